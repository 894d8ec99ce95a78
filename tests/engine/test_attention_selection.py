"""Which attention backend runs: auto, explicit choices, and the per-model fallback from FlashInfer."""

from __future__ import annotations

import logging

import pytest
import torch

from engine.attention import AttentionBackendError, choose_backend_name
from engine.attention.flashinfer_backend import build_metadata
from engine.forward_batch import ForwardBatch


def test_auto_is_torch_native_on_cpu():
    assert choose_backend_name("auto", "cpu", {64}, "float32", flashinfer_available=True) == "torch_native"


def test_auto_prefers_flashinfer_on_cuda_when_installed():
    assert choose_backend_name("auto", "cuda", {128}, "bfloat16", flashinfer_available=True) == "flashinfer"
    assert choose_backend_name("auto", "cuda", {128}, "bfloat16", flashinfer_available=False) == "torch_native"


def test_unsupported_shapes_fall_back_with_a_log_line(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_backend_name("flashinfer", "cuda", {32}, "bfloat16", flashinfer_available=True) == "torch_native"
    assert "head size [32]" in caplog.text
    assert choose_backend_name("auto", "cuda", {64}, "float32", flashinfer_available=True) == "torch_native"


def test_explicit_flashinfer_fails_clearly_where_it_cannot_run():
    with pytest.raises(AttentionBackendError, match="needs a CUDA device"):
        choose_backend_name("flashinfer", "cpu", {64}, "bfloat16", flashinfer_available=True)
    with pytest.raises(AttentionBackendError, match="not installed"):
        choose_backend_name("flashinfer", "cuda", {64}, "bfloat16", flashinfer_available=False)
    with pytest.raises(AttentionBackendError, match="reserved"):
        choose_backend_name("triton", "cuda", {64}, "bfloat16")
    with pytest.raises(AttentionBackendError, match="not one of"):
        choose_backend_name("xformers", "cpu", {64}, "float32")


def test_flashinfer_metadata_is_the_packed_offsets():
    import numpy as np

    batch = ForwardBatch.from_sequences([np.arange(3), np.arange(5), np.arange(1)], "cpu")
    meta = build_metadata(batch)
    assert meta.indptr.dtype == torch.int32 and meta.indptr_cpu.device.type == "cpu"
    assert meta.indptr_cpu.tolist() == [0, 3, 8, 9] and meta.planned == set()
