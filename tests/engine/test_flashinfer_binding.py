"""The FlashInfer backend's calls bind to FlashInfer 0.6.8's real signatures, checked on the CPU.

The real backend object runs `prepare`/`forward` against a stand-in `flashinfer` module whose wrapper methods
carry the signatures parsed from the pinned wheel's source: a keyword 0.6.8 lacks fails here, not on a GPU.
"""

from __future__ import annotations

import ast
import sys

import numpy as np
import pytest
import torch

from engine.forward_batch import ForwardBatch
from tests.support.flashinfer_source import (
    Recorder,
    find_definition,
    flashinfer_package,
    method_node,
    signature_of,
    stand_in_class,
    stand_in_modules,
)

WRAPPER = "BatchPrefillWithRaggedKVCacheWrapper"


def _run_output(q, k, v, **_):
    return torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # what 0.6.8's run() allocates for `out`


@pytest.fixture
def recorded_flashinfer(monkeypatch):
    recorder = Recorder()
    wrapper = stand_in_class(
        flashinfer_package(), "", WRAPPER, recorder, {"plan": lambda **_: None, "run": _run_output}
    )
    for name, module in stand_in_modules({"flashinfer": {WRAPPER: wrapper}}).items():
        monkeypatch.setitem(sys.modules, name, module)
    return recorder


def fused_qkv(num_tokens: int, heads: int, kv_heads: int, head_dim: int):
    """q, k, v as the models make them: strided views of one fused projection."""
    qkv = torch.randn(num_tokens, heads + 2 * kv_heads, head_dim, dtype=torch.bfloat16)
    return qkv.split([heads, kv_heads, kv_heads], dim=1)


def test_prepare_and_forward_bind_to_the_real_plan_and_run(recorded_flashinfer):
    from engine.attention.flashinfer_backend import FlashInferBackend

    backend = FlashInferBackend("cpu")
    batch = ForwardBatch.from_sequences([np.arange(3), np.arange(5), np.arange(1)], "cpu")
    backend.prepare(batch)
    q, k, v = fused_qkv(batch.num_tokens, 16, 8, 128)
    for _layer in range(3):
        out = backend.forward(q, k, v, batch, True, 128**-0.5)
    assert out.shape == (9, 16 * 128)

    (init,) = recorded_flashinfer.named(f"{WRAPPER}.__init__")
    assert init.arguments["kv_layout"] == "NHD"
    (plan,) = recorded_flashinfer.named(f"{WRAPPER}.plan")  # once per batch and shape, not per layer
    for indptr in (plan.arguments["qo_indptr"], plan.arguments["kv_indptr"]):
        assert indptr.device.type == "cpu" and indptr.dtype == torch.int32 and indptr.tolist() == [0, 3, 8, 9]
    assert plan.arguments["num_qo_heads"] == 16 and plan.arguments["num_kv_heads"] == 8
    assert plan.arguments["head_dim_qk"] == 128 and plan.arguments["causal"] is True
    assert plan.arguments["q_data_type"] == torch.bfloat16 and plan.arguments["sm_scale"] == 128**-0.5
    runs = recorded_flashinfer.named(f"{WRAPPER}.run")
    assert len(runs) == 3
    for name, given in zip("qkv", (q, k, v), strict=True):
        passed = runs[0].arguments[name]
        # the strided view itself, not a copy
        assert (
            passed.data_ptr() == given.data_ptr() and passed.stride() == given.stride() and not passed.is_contiguous()
        )


def test_a_new_batch_and_a_new_shape_plan_again(recorded_flashinfer):
    from engine.attention.flashinfer_backend import FlashInferBackend

    backend = FlashInferBackend("cpu")
    first = ForwardBatch.from_sequences([np.arange(4)], "cpu")
    backend.prepare(first)
    backend.forward(*fused_qkv(4, 16, 16, 64), first, False, 0.125)
    backend.forward(*fused_qkv(4, 16, 16, 128), first, False, 0.125)  # a second tower's shape
    second = ForwardBatch.from_sequences([np.arange(2), np.arange(6)], "cpu")
    backend.prepare(second)
    backend.forward(*fused_qkv(8, 16, 16, 64), second, False, 0.125)
    plans = recorded_flashinfer.named(f"{WRAPPER}.plan")
    assert [p.arguments["qo_indptr"].tolist() for p in plans] == [[0, 4], [0, 4], [0, 2, 8]]
    assert len(recorded_flashinfer.named(f"{WRAPPER}.__init__")) == 2  # one wrapper per shape, reused across batches


def test_a_keyword_the_pinned_flashinfer_lacks_fails_here(recorded_flashinfer):
    """The check has teeth: the keywords the backend once passed are rejected by 0.6.8's plan()."""
    wrapper = sys.modules["flashinfer"].BatchPrefillWithRaggedKVCacheWrapper(torch.empty(8, dtype=torch.uint8), "NHD")
    indptr = torch.tensor([0, 3], dtype=torch.int32)
    with pytest.raises(TypeError, match="qo_indptr_cpu"):
        wrapper.plan(indptr, indptr, 2, 2, 64, qo_indptr_cpu=indptr)
    with pytest.raises(AssertionError, match="num_qo_heads"):
        wrapper.plan(indptr, indptr, "2", 2, 64)


def test_the_pinned_wrapper_is_exported_and_its_run_takes_strided_inputs():
    package = flashinfer_package()
    cls = find_definition(package, "", WRAPPER)
    assert isinstance(cls, ast.ClassDef)
    run = signature_of(method_node(cls, "run"))
    assert list(run.parameters)[:4] == ["self", "q", "k", "v"]
    # 0.6.8 hands q/k/v to the kernel with their token and head strides; nothing in run() makes them contiguous
    source = ast.unparse(method_node(cls, "run"))
    assert ".contiguous()" not in source
    kernel = (package / "data" / "csrc" / "batch_prefill_sm90.cu").read_text()
    assert "params.q_stride_n = q.stride(0);" in kernel and "params.k_stride_h = k.stride(1);" in kernel
