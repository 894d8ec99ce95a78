"""Turns multimodal requests into model inputs in the frontend: images loaded, preprocessed in a worker pool,
image tokens expanded into the prompt (Qwen2-VL) or carried beside it (CLIP)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engine.model_config import ModelConfig
from processes.messages import ImageData, RawArrayView
from server.args import ServerArgs
from server.chat_template import QWEN2_VL_IMAGE_TOKEN, qwen2_vl_prompt
from server.errors import APIError
from server.media import MediaError, MediaLimits, decode_image, load_image_bytes
from server.protocol import MultimodalItem
from server.tokenizer_manager import TokenizedInputs, TokenizerManager


class MultimodalProcessor:
    def __init__(self, config: ModelConfig, args: ServerArgs, tokenizer: TokenizerManager):
        from transformers import AutoImageProcessor  # PIL backend: torchvision is not needed

        self.kind = config.spec.multimodal
        self.tokenizer = tokenizer
        self.context_length = config.context_length
        self.chat_template = args.chat_template
        qwen2_vl_prompt(self.chat_template, None, False)  # an unknown template fails at startup
        self.image_processor = AutoImageProcessor.from_pretrained(config.model_path)
        allowed = args.allowed_local_media_path
        self.limits = MediaLimits(
            fetch_timeout=args.media_fetch_timeout,
            max_bytes=args.max_media_bytes,
            max_pixels=args.max_image_pixels,
            allowed_local_dir=Path(allowed).resolve() if allowed else None,
        )
        self.pool = ThreadPoolExecutor(max_workers=args.media_workers, thread_name_prefix="media")
        if self.kind == "qwen2_vl":
            self.image_token_id = tokenizer.tokenizer.convert_tokens_to_ids(QWEN2_VL_IMAGE_TOKEN)
            self.merge_size = int(config.hf["vision_config"].get("spatial_merge_size", 2))
        else:
            vision = config.hf["vision_config"]
            self.clip_image_tokens = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2 + 1

    async def prepare(self, items: list) -> tuple[TokenizedInputs, list[ImageData]]:
        """All items of one request -> their token ids and images; any bad item is a 400 naming it."""
        pixels = await asyncio.gather(
            *(self._load(i, item.image) for i, item in enumerate(items) if _image_of(item) is not None),
            return_exceptions=True,
        )
        for result in pixels:  # report the first bad item in input order
            if isinstance(result, BaseException):
                raise result
        by_index = dict(pixels)
        sequences = self._plain_sequences(items)
        images = []
        for i, item in enumerate(items):
            if not isinstance(item, MultimodalItem):
                continue
            if self.kind == "clip":
                sequences[i], image = self._clip_item(i, item, by_index.get(i))
            else:
                sequences[i], image = self._qwen2_vl_item(i, item, by_index.get(i))
            if image is not None:
                images.append(image)
        lens = np.fromiter((len(s) for s in sequences), dtype=np.int32, count=len(sequences))
        flat = np.concatenate(sequences).astype(np.int32) if sequences else np.zeros(0, np.int32)
        return TokenizedInputs(flat, lens), images

    async def _load(self, index: int, source: str) -> tuple[int, tuple[np.ndarray, tuple[int, int, int] | None]]:
        where = f"input[{index}].image"
        try:
            data = await load_image_bytes(source, self.limits)
            loop = asyncio.get_running_loop()
            # decoding and resizing are CPU work: keep them off the event loop
            return index, await loop.run_in_executor(self.pool, self._preprocess, data)
        except MediaError as error:
            raise APIError(f"{where}: {error}", param="input") from None

    def _preprocess(self, data: bytes) -> tuple[np.ndarray, tuple[int, int, int] | None]:
        image = decode_image(data, self.limits.max_pixels)
        try:
            out = self.image_processor(images=[image], return_tensors="np")
        except ValueError as error:  # e.g. Qwen2-VL refuses aspect ratios beyond 200:1
            raise MediaError(f"image cannot be preprocessed: {error}") from None
        pixels = np.ascontiguousarray(out["pixel_values"], dtype=np.float32)
        if self.kind == "clip":
            return pixels[0], None
        t, h, w = (int(x) for x in out["image_grid_thw"][0])
        return pixels, (t, h, w)

    def _plain_sequences(self, items: list) -> list[np.ndarray]:
        """Texts and token ids tokenized as in a text-only request; multimodal slots left empty for now."""
        plain = [(i, item) for i, item in enumerate(items) if not isinstance(item, MultimodalItem)]
        sequences = [np.zeros(0, np.int32) for _ in items]
        if plain:
            tokens = self.tokenizer.tokenize([item for _, item in plain])
            bounds = np.concatenate(([0], np.cumsum(tokens.seq_lens)))
            for k, (i, _) in enumerate(plain):
                sequences[i] = tokens.token_ids[bounds[k] : bounds[k + 1]]
        return sequences

    def _clip_item(self, index: int, item: MultimodalItem, pixels) -> tuple[np.ndarray, ImageData | None]:
        if item.text is not None and item.image is not None:
            raise APIError(f"input[{index}]: CLIP embeds a text or an image, not both in one item", param="input")
        if item.image is None:
            tokens = self.tokenizer.tokenize([item.text])
            return tokens.token_ids, None
        array, _ = pixels
        return np.zeros(0, np.int32), ImageData(index, RawArrayView.from_numpy(array), None, self.clip_image_tokens)

    def _qwen2_vl_item(self, index: int, item: MultimodalItem, pixels) -> tuple[np.ndarray, ImageData | None]:
        prompt = qwen2_vl_prompt(self.chat_template, item.text, item.image is not None)
        ids = np.asarray(self.tokenizer.tokenizer(prompt, add_special_tokens=True)["input_ids"], dtype=np.int32)
        slots = np.flatnonzero(ids == self.image_token_id)
        if len(slots) != (item.image is not None):
            raise APIError(f"input[{index}].text must not contain {QWEN2_VL_IMAGE_TOKEN}", param="input")
        image = None
        if item.image is not None:
            array, grid = pixels
            num_image_tokens = grid[0] * grid[1] * grid[2] // self.merge_size**2
            # the one placeholder becomes a token per merged patch, as Qwen2VLProcessor expands it
            ids = np.concatenate(
                (ids[: slots[0]], np.full(num_image_tokens, self.image_token_id, np.int32), ids[slots[0] + 1 :])
            )
            image = ImageData(index, RawArrayView.from_numpy(array), grid)
        if len(ids) > self.context_length:
            raise APIError(
                f"input[{index}] has {len(ids)} tokens with its image, more than the model's context length of "
                f"{self.context_length}",
                param="input",
            )
        return ids, image


def _image_of(item) -> str | None:
    return item.image if isinstance(item, MultimodalItem) else None
