"""Loads a model onto its device and turns lists of token-id arrays into pooled float32 vectors."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable

import numpy as np
import torch

from engine.attention import choose_backend_name, create_attention_backend
from engine.forward_batch import ForwardBatch
from engine.image_batch import ImageBatch
from engine.inputs import ImageInput
from engine.layers import cpu_packed_linear
from engine.layers.compiled_elementwise import compile_elementwise
from engine.layers.cpu_packed_linear import pack_model_linears, padding_sequence_lengths, row_bucket_batches
from engine.layers.int8_linear import quantize_model_linears
from engine.model_config import ModelConfig
from engine.models.registry import load_model_class
from engine.pooling import pool_hidden_states, pooled_row_indices
from engine.st_dense import DenseStack
from engine.warmup_layers import one_layer_of_each_kind
from engine.weights import LoadedTensor, iterate_weights

logger = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class ModelRunner:
    def __init__(
        self,
        config: ModelConfig,
        device: str = "cpu",
        attention_backend: str = "auto",
        weights: Iterable[tuple[str, LoadedTensor]] | None = None,
        tp_size: int = 1,
        pack_cpu_weights: bool = True,
        compile_elementwise_steps: bool = False,
    ):
        """`weights` defaults to the folder's safetensors; benchmarks pass an in-memory state dict."""
        self.config = config
        self.device = torch.device(device)
        backend = choose_backend_name(attention_backend, str(self.device), config.head_dims, config.dtype)
        self.attn = create_attention_backend(backend, str(self.device), config.dtype)
        started = time.monotonic()
        model_class = load_model_class(config.architecture)
        # Build straight into the serving dtype and device so a large model is never held twice.
        with _default_dtype(_TORCH_DTYPES[config.dtype]), self.device:
            self.model = model_class(config, self.attn)
            # the folder's sentence-transformers Dense modules, applied to the pooled vectors
            self.dense = DenseStack(config.st_info.dense) if config.st_info.dense else None
        if weights is None:  # with several ranks, each reads only its slices from disk
            weights = iterate_weights(config.model_path, progress=True, sliced=tp_size > 1)
        self.model.load_weights(weights)
        self.model.eval()
        if compile_elementwise_steps and self.device.type == "cpu":  # --enable-torch-compile; the GPU stays eager
            compile_elementwise(_TORCH_DTYPES[config.dtype])
        if config.quantization == "int8":  # oneDNN's int8 matmuls take the place of the packed float ones
            self.packed = quantize_model_linears(self.model) > 0
        else:
            self.packed = pack_cpu_weights and self.device.type == "cpu" and pack_model_linears(self.model) > 0
        # CLS/LAST pooling reads one row per sequence: a model that can, finishes its last layer on those alone.
        # EMBEDSERVE_POOLED_ROWS_ONLY=0 runs the last layer on every token (a benchmark's before, a debugging aid).
        reads = self.model.reads_one_row if self.model.pools_itself else config.pooling
        enabled = os.environ.get("EMBEDSERVE_POOLED_ROWS_ONLY", "1") != "0"
        finishes = enabled and reads is not None and self.model.finishes_on_pooled_rows(reads)
        self.pooled_row_method: str | None = reads if finishes else None  # None: the last layer runs on every row
        if pack_cpu_weights and self.device.type == "cpu" and not self.packed:
            logger.info("no linear layer could be packed for oneDNN on this CPU")
        logger.info(
            "loaded %s (%s, %s) in %.1fs", config.architecture, config.dtype, self.attn.name, time.monotonic() - started
        )

    @torch.inference_mode()
    def embed(
        self,
        sequences: list[np.ndarray],
        images: list[ImageInput | None] | None = None,
        token_types: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Token-id arrays (and each one's image, or each pair's token types) -> (num_seqs, dim) float32.

        dim is the vector size (unnormalized) for an embedder, the number of labels (raw logits) for a cross-encoder.
        """
        num_sequences = len(sequences)
        if self._pads_rows():
            # Extra sequences of token 0 bring the batch to its row bucket: attention keeps them apart from the
            # real ones, and their rows are dropped after pooling.
            extra = padding_sequence_lengths(sum(len(s) for s in sequences), self.config.context_length)
            sequences = [*sequences, *(np.zeros(length, dtype=np.int32) for length in extra)]
            if images is not None:
                images = [*images, *([None] * len(extra))]
            if token_types is not None:
                token_types = [*token_types, *(np.zeros(length, dtype=np.int32) for length in extra)]
        batch = ForwardBatch.from_sequences(sequences, self.device, self.config.text.position_offset, token_types)
        if images is not None:
            batch.images = ImageBatch.from_inputs(images, sequences, self.device, _TORCH_DTYPES[self.config.dtype])
        self.attn.prepare(batch)
        if self.pooled_row_method is not None:
            batch.pooled_rows = pooled_row_indices(batch.cu_seqlens, self.pooled_row_method)
        output = self.model(batch)
        if self.model.pools_itself:  # CLIP, cross-encoders: pooling and projection are part of the model
            return output[:num_sequences].float().cpu().numpy()
        if batch.pooled_rows is not None:  # the model returned the pooled rows alone
            pooled = output[:num_sequences].float()
        else:
            pooled = pool_hidden_states(output, batch.cu_seqlens, self.config.pooling)[:num_sequences]
        if self.dense is not None:
            pooled = self.dense(pooled)
        return pooled.cpu().numpy()

    def _pads_rows(self) -> bool:
        return self.packed and cpu_packed_linear.pads_rows(_TORCH_DTYPES[self.config.dtype])

    def warmup(self, max_batch_tokens: int = 0) -> None:
        """One small forward so the first request does not pay for lazy initialisation.

        With padded rows (packed CPU weights, unless EMBEDSERVE_PAD_ROWS=0), also one forward per row bucket up to
        `max_batch_tokens`: every oneDNN primitive a batch can need is built now, not under load, and memory
        starts at its plateau.
        """
        self.embed([np.arange(1, 9, dtype=np.int32) % self.config.vocab_size])
        # The test suite's servers skip the bucket builds (EMBEDSERVE_WARMUP_ROW_BUCKETS=0): they cost each server
        # start a second or more and change memory and speed only, which tests do not measure through servers.
        building = os.environ.get("EMBEDSERVE_WARMUP_ROW_BUCKETS", "1") != "0"
        if not (max_batch_tokens and building and self._pads_rows()):
            return
        started = time.monotonic()
        batches = row_bucket_batches(max_batch_tokens, self.config.context_length)
        with one_layer_of_each_kind(self.model):
            for lengths in batches:
                self.embed([np.ones(length, dtype=np.int32) for length in lengths])
        logger.info("built the primitives of %d row buckets in %.1fs", len(batches), time.monotonic() - started)
