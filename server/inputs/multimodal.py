"""Turns multimodal requests into model inputs in the frontend: images loaded, preprocessed in a worker pool,
image tokens expanded into the prompt (Qwen2-VL) or carried beside it (CLIP).

One request's path: texts tokenized and the images' known token cost reserved; then each image, at most
--max-media-loads-per-request of the request's and --max-concurrent-media-loads of the server's at once, is
loaded (fetched, read or base64-decoded), its header read and its preprocessing sized (refused past the
bounds, its tokens reserved), and only then decoded and preprocessed in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine.model_config import ModelConfig
from processes.messages import ImageData, RawArrayView
from server.http.errors import APIError
from server.http.protocol import MultimodalItem
from server.inputs.image_geometry import ImageGeometry, ImagePlan
from server.inputs.media import ImageSource, MediaLimits, classify_source, load_inline, load_pixels, open_image
from server.inputs.media_errors import MediaError
from server.inputs.media_fetch import FetchPolicy, fetch_image, new_fetch_client
from server.inputs.media_local import LocalMediaRoot
from server.inputs.media_memory import image_memory_bound
from server.inputs.prompts import QWEN2_VL_IMAGE_TOKEN, qwen2_vl_prompt
from server.inputs.tokenizer_manager import TokenizedInputs, TokenizerManager
from server.launch.args import ServerArgs

logger = logging.getLogger(__name__)
# Texts longer than this in all are tokenized in a thread rather than on the event loop.
INLINE_TEXT_CHARS = 4096
ReserveTokens = Callable[[int], None]


@dataclass
class _Prepared:
    pixels: np.ndarray
    grid: tuple[int, int, int] | None


class MultimodalProcessor:
    def __init__(self, config: ModelConfig, args: ServerArgs, tokenizer: TokenizerManager):
        from transformers import AutoImageProcessor  # PIL backend: torchvision is not needed

        if config.spec.multimodal is None:
            raise ValueError(f"{config.architecture} takes no images")
        self.kind = config.spec.multimodal
        self.tokenizer = tokenizer
        self.context_length = config.context_length
        self.chat_template = args.chat_template
        qwen2_vl_prompt(self.chat_template, None, False)  # an unknown template fails at startup
        overrides = args.image_processor_kwargs()
        if overrides and self.kind != "qwen2_vl":
            raise ValueError(f"--mm-processor-kwargs sets Qwen2-VL's pixel budget; {config.architecture} takes none")
        # as vLLM and GME's authors pass them: over the folder's preprocessor_config.json
        self.image_processor = AutoImageProcessor.from_pretrained(config.model_path, **overrides)
        clip_tokens = config.vision.tokens_per_image if config.vision is not None else None
        self.geometry = ImageGeometry(self.kind, self.image_processor, clip_tokens or 0)
        allowed = args.allowed_local_media_path
        self.limits = MediaLimits(
            fetch=FetchPolicy(
                media_fetch_timeout=args.media_fetch_timeout,
                max_media_bytes=args.max_media_bytes,
                allowed_media_hosts=args.allowed_media_hosts(),
                allow_private_media_urls=args.allow_private_media_urls,
            ),
            max_media_bytes=args.max_media_bytes,
            max_image_pixels=args.max_image_pixels,
            local_root=LocalMediaRoot.from_flag(allowed) if allowed else None,
        )
        self.max_images_per_request = args.max_images_per_request
        self.max_media_loads_per_request = args.max_media_loads_per_request
        self.server_loads = asyncio.Semaphore(args.max_concurrent_media_loads)
        self.fetch_client = new_fetch_client(args.media_fetch_timeout)
        self.pool = ThreadPoolExecutor(max_workers=args.media_workers, thread_name_prefix="media")
        if self.kind == "qwen2_vl":
            self.image_token_id = tokenizer.tokenizer.convert_tokens_to_ids(QWEN2_VL_IMAGE_TOKEN)
        bound = image_memory_bound(args, self.geometry)
        logger.info(
            "image memory bound (docs/security.md): %.2f GB per request, %.2f GB for images in flight server-wide",
            bound.per_request / 1e9,
            bound.in_flight / 1e9,
        )

    async def prepare(
        self, items: list, reserve_tokens: ReserveTokens | None = None
    ) -> tuple[TokenizedInputs, list[ImageData]]:
        """All items of one request -> their token ids and images; any bad item is a 400 naming it.

        `reserve_tokens(total)` sets the request's whole token reservation (it raises 429/413 past the budget);
        it is called before any image is fetched, and again as each image's size becomes known.
        """
        reserve = reserve_tokens or (lambda _: None)
        sources = self._classify_images(items)  # malformed strings are 400s before anything is fetched
        if _num_text_chars(items) > INLINE_TEXT_CHARS:
            sequences = await asyncio.to_thread(self._text_sequences, items)
        else:  # small texts tokenize faster than a thread hop, and the tokenizer stays on one thread
            sequences = self._text_sequences(items)
        known = sum(len(s) for s in sequences)
        if self.kind == "clip":
            known += self.geometry.clip_tokens * len(sources)
        extra_tokens: dict[int, int] = {}  # Qwen2-VL: an image's tokens beyond its one placeholder

        def image_sized(index: int, plan: ImagePlan) -> None:
            if self.kind != "qwen2_vl":
                return
            if len(sequences[index]) - 1 + plan.num_tokens > self.context_length:
                raise MediaError(
                    f"the item needs {len(sequences[index]) - 1 + plan.num_tokens} tokens with its image, more "
                    f"than the model's context length of {self.context_length}"
                )
            extra_tokens[index] = plan.num_tokens - 1
            reserve(known + sum(extra_tokens.values()))

        reserve(known)
        prepared = await self._load_all(sources, image_sized)
        return self._assemble(items, sequences, prepared)

    def _classify_images(self, items: list) -> dict[int, ImageSource]:
        indexed = [(i, item.image) for i, item in enumerate(items) if _image_of(item) is not None]
        if len(indexed) > self.max_images_per_request:
            raise APIError(
                f"input has {len(indexed)} images, more than the limit of {self.max_images_per_request} (--max-images-per-request)",
                param="input",
            )
        sources = {}
        for index, source in indexed:
            try:
                sources[index] = classify_source(source, self.limits)
            except MediaError as error:
                raise _item_error(index, error) from None
        return sources

    async def _load_all(self, sources: dict[int, ImageSource], image_sized) -> dict[int, _Prepared]:
        request_loads = asyncio.Semaphore(self.max_media_loads_per_request)
        tasks = {
            index: asyncio.ensure_future(self._load(index, source, request_loads, image_sized))
            for index, source in sources.items()
        }
        try:
            if tasks:
                await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        finally:  # the first failure (or the request's own cancellation) stops the request's other loads
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        failures = [t.exception() for t in tasks.values() if not t.cancelled() and t.exception() is not None]
        if failures:
            client_errors = [f for f in failures if isinstance(f, APIError)]
            raise (client_errors or failures)[0]  # type: ignore[misc]
        return {index: task.result() for index, task in tasks.items()}

    async def _load(self, index: int, source: ImageSource, request_loads, image_sized) -> _Prepared:
        loop = asyncio.get_running_loop()
        try:
            async with request_loads, self.server_loads:
                if source.url is not None:
                    data = await fetch_image(self.fetch_client, source.url, self.limits.fetch)
                elif source.inline is not None:
                    data = await loop.run_in_executor(self.pool, load_inline, source.inline, self.limits)
                else:
                    raise MediaError("the image source is empty")
                image, plan = await loop.run_in_executor(self.pool, self._open, data)
                del data
                image_sized(index, plan)
                return await loop.run_in_executor(self.pool, self._preprocess, image)
        except MediaError as error:
            raise _item_error(index, error) from None

    def _open(self, data: bytes):
        image = open_image(data, self.limits.max_image_pixels)
        plan = self.geometry.plan(*image.size)
        if plan.resized_pixels > self.limits.max_image_pixels:
            raise MediaError(
                f"image is {image.size[0]}x{image.size[1]}, which the model's preprocessing would resize to "
                f"{plan.resized_pixels} pixels, more than the limit of {self.limits.max_image_pixels} (--max-image-pixels)"
            )
        return image, plan

    def _preprocess(self, image) -> _Prepared:
        image = load_pixels(image)
        try:
            out = self.image_processor(images=[image], return_tensors="np")
        except Exception:  # a mode or layout the processor cannot handle is the image's fault, not a bug
            logger.warning("image preprocessing failed", exc_info=True)
            raise MediaError("image cannot be preprocessed") from None
        pixels = np.ascontiguousarray(out["pixel_values"], dtype=np.float32)
        if self.kind == "clip":
            return _Prepared(pixels[0], None)
        t, h, w = (int(x) for x in out["image_grid_thw"][0])
        return _Prepared(pixels, (t, h, w))

    def _text_sequences(self, items: list) -> list[np.ndarray]:
        """Each item's token ids without image tokens: texts as in a text-only request, CLIP text items,
        and Qwen2-VL prompts with one placeholder per image. Blocking: runs in a thread."""
        sequences = [np.zeros(0, np.int32) for _ in items]
        plain = [(i, item) for i, item in enumerate(items) if not isinstance(item, MultimodalItem)]
        if plain:
            tokens = self.tokenizer.tokenize([item for _, item in plain])
            bounds = np.concatenate(([0], np.cumsum(tokens.seq_lens)))
            for k, (i, _) in enumerate(plain):
                sequences[i] = tokens.token_ids[bounds[k] : bounds[k + 1]]
        for i, item in enumerate(items):
            if not isinstance(item, MultimodalItem):
                continue
            if self.kind == "clip":
                if item.text is not None and item.image is not None:
                    raise APIError(f"input[{i}]: CLIP embeds a text or an image, not both in one item", param="input")
                if item.text is not None:
                    sequences[i] = self.tokenizer.tokenize([item.text]).token_ids
                continue
            prompt = qwen2_vl_prompt(self.chat_template, item.text, item.image is not None)
            ids = np.asarray(self.tokenizer.tokenizer(prompt, add_special_tokens=True)["input_ids"], dtype=np.int32)
            if np.count_nonzero(ids == self.image_token_id) != (item.image is not None):
                raise APIError(f"input[{i}].text must not contain {QWEN2_VL_IMAGE_TOKEN}", param="input")
            sequences[i] = ids
        return sequences

    def _assemble(
        self, items: list, sequences: list[np.ndarray], prepared: dict[int, _Prepared]
    ) -> tuple[TokenizedInputs, list[ImageData]]:
        images = []
        for i in sorted(prepared):
            image = prepared[i]
            if self.kind == "clip":
                images.append(ImageData(i, RawArrayView.from_numpy(image.pixels), None, self.geometry.clip_tokens))
                continue
            ids = sequences[i]
            slot = int(np.flatnonzero(ids == self.image_token_id)[0])
            assert image.grid is not None  # set by every Qwen2-VL preprocessing
            t, h, w = image.grid
            # the one placeholder becomes a token per merged patch, as Qwen2VLProcessor expands it
            expanded = np.full(t * h * w // self.geometry.merge_size**2, self.image_token_id, np.int32)
            sequences[i] = np.concatenate((ids[:slot], expanded, ids[slot + 1 :]))
            images.append(ImageData(i, RawArrayView.from_numpy(image.pixels), image.grid))
        for i, ids in enumerate(sequences):
            if self.kind == "qwen2_vl" and isinstance(items[i], MultimodalItem) and len(ids) > self.context_length:
                raise APIError(
                    f"input[{i}] has {len(ids)} tokens with its image, more than the model's context length of "
                    f"{self.context_length}",
                    param="input",
                )
        lens = np.fromiter((len(s) for s in sequences), dtype=np.int32, count=len(sequences))
        flat = np.concatenate(sequences).astype(np.int32) if sequences else np.zeros(0, np.int32)
        return TokenizedInputs(flat, lens), images


def _num_text_chars(items: list) -> int:
    texts = (item.text if isinstance(item, MultimodalItem) else item for item in items)
    return sum(len(text) for text in texts if isinstance(text, str))


def _image_of(item) -> str | None:
    return item.image if isinstance(item, MultimodalItem) else None


def _item_error(index: int, error: MediaError) -> APIError:
    return APIError(f"input[{index}].image: {error}", param="input")
