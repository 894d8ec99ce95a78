"""FlashInfer's ragged prefill equals the per-sequence SDPA backend (GPU only; the GPU host runs the same
comparison as a plain script, scripts/gpu_kernels.py, since it has no pytest)."""

from __future__ import annotations

import pytest
import torch

from engine.attention import flashinfer_import_error
from scripts.gpu_kernels import CASES, MAX_RELATIVE_ERROR, attention_error

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or flashinfer_import_error() is not None, reason="needs CUDA and flashinfer"
    ),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_flashinfer_matches_sdpa_on_a_ragged_batch_of_strided_inputs(causal, case):
    from engine.attention.flashinfer_backend import FlashInferBackend

    error = attention_error(FlashInferBackend("cuda"), case, causal, torch.bfloat16, "cuda")
    assert error < MAX_RELATIVE_ERROR, error
