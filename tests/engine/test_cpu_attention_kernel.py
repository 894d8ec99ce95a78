"""The AMX varlen attention kernel: as close to exact attention as torch's bf16 SDPA, batch- and thread-invariant."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.attention import create_attention_backend
from engine.attention.cpu_kernel import REQUIRED_FLAGS, load_varlen_attention, missing_cpu_flags, unavailable_reason
from engine.attention.torch_native import TorchNativeBackend, attend_per_sequence, sequence_bounds
from engine.forward_batch import ForwardBatch

REPO = Path(__file__).resolve().parents[2]
# Where the CPU has AMX and a compiler is installed, the kernel must build: a broken build fails these tests
KERNEL_REASON = unavailable_reason() or (None if shutil.which(os.environ.get("CXX", "c++")) else "no C++ compiler")
needs_kernel = pytest.mark.skipif(KERNEL_REASON is not None, reason=f"AMX varlen kernel: {KERNEL_REASON}")


@pytest.fixture
def kernel():
    op = load_varlen_attention()
    assert op is not None, "the AMX varlen kernel did not build here (see the log)"
    return op


# every length class: one token, below, at and past a chunk of 32 keys, a partial block of query rows, long ones
LENGTHS = [1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 300]


def test_cpu_flags_come_from_the_flags_line():
    amx = "processor\t: 0\nflags\t\t: fpu sse2 " + " ".join(REQUIRED_FLAGS) + " avx512_vnni\n"
    assert missing_cpu_flags(amx) == []
    zen4 = "flags\t\t: fpu avx512f avx512bw avx512vl avx512_bf16 avx512_vnni\n"
    assert missing_cpu_flags(zen4) == ["amx_tile", "amx_bf16"]
    assert missing_cpu_flags("model name\t: something\n") == list(REQUIRED_FLAGS)


def test_the_environment_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv("EMBEDSERVE_CPU_ATTENTION_KERNEL", "0")
    assert unavailable_reason() == "EMBEDSERVE_CPU_ATTENTION_KERNEL=0"


def _packed(lengths: list[int], heads: int, kv_heads: int, dim: int, seed: int = 0):
    """q, k, v as views of one fused projection, as the models produce them, and the batch's offsets."""
    generator = torch.Generator().manual_seed(seed)
    qkv = torch.randn(sum(lengths), heads + 2 * kv_heads, dim, generator=generator).bfloat16()
    q, k, v = qkv.split([heads, kv_heads, kv_heads], dim=1)
    cu = torch.tensor(np.concatenate(([0], np.cumsum(lengths))), dtype=torch.int32)
    return q, k, v, cu


def _worst_error(out: torch.Tensor, exact: torch.Tensor) -> float:
    return (out.float() - exact).abs().max().item()


@needs_kernel
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("heads", "kv_heads", "dim"), [(4, 2, 128), (4, 4, 64), (3, 3, 32), (8, 1, 64)])
def test_kernel_is_as_exact_as_bf16_sdpa(kernel, causal, heads, kv_heads, dim):
    q, k, v, cu = _packed(LENGTHS, heads, kv_heads, dim)
    scale = dim**-0.5
    bounds = sequence_bounds(LENGTHS)
    exact = attend_per_sequence(q.double(), k.double(), v.double(), bounds, causal, scale, None)
    sdpa = attend_per_sequence(q, k, v, bounds, causal, scale, None)
    out = kernel(q, k, v, cu, causal, scale)
    assert out.shape == (sum(LENGTHS), heads * dim) and out.dtype == torch.bfloat16
    # bf16 inputs, fp32 scores and softmax, bf16 weights into the second matmul: the same roundings as SDPA's
    assert _worst_error(out, exact.float()) <= 1.5 * _worst_error(sdpa, exact.float()) + 1e-3
    rows = F.cosine_similarity(out.float().view(-1, dim), exact.float().view(-1, dim), dim=1)
    assert rows.min() > 0.9999


@needs_kernel
@pytest.mark.parametrize(
    ("causal", "window"), [(False, (64, 64)), (True, (4095, 0)), (False, (3, 40)), (True, (16, 16))]
)
def test_local_windows_are_as_exact_as_bf16_sdpa(kernel, causal, window):
    q, k, v, cu = _packed(LENGTHS, 4, 2, 64, seed=6)
    bounds = sequence_bounds(LENGTHS)
    exact = attend_per_sequence(q.double(), k.double(), v.double(), bounds, causal, 0.125, window)
    sdpa = attend_per_sequence(q, k, v, bounds, causal, 0.125, window)
    out = kernel(q, k, v, cu, causal, 0.125, *window)
    assert _worst_error(out, exact.float()) <= 1.5 * _worst_error(sdpa, exact.float()) + 1e-3
    full = kernel(q, k, v, cu, causal, 0.125)
    start, end = bounds[-1]  # 300 tokens
    if window == (4095, 0):  # wider than any sequence here: it masks nothing, and the bits are the same
        assert torch.equal(out, full)
    else:
        assert not torch.equal(out[start:end], full[start:end])


@needs_kernel
def test_a_sequence_gets_the_same_bits_alone_in_any_batch_on_any_thread_count(kernel):
    q, k, v, cu = _packed(LENGTHS, 4, 2, 128, seed=1)
    together = kernel(q, k, v, cu, True, 0.1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = kernel(q, k, v, cu, True, 0.1)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(together, one_thread)
    for start, end in sequence_bounds(LENGTHS):
        alone = kernel(q[start:end], k[start:end], v[start:end], torch.tensor([0, end - start]), True, 0.1)
        assert torch.equal(alone, together[start:end])


@needs_kernel
def test_views_and_contiguous_inputs_give_the_same_bits(kernel):
    q, k, v, cu = _packed([5, 40, 70], 4, 2, 64, seed=2)
    assert not q.is_contiguous()
    assert torch.equal(
        kernel(q, k, v, cu, False, 0.2), kernel(q.contiguous(), k.contiguous(), v.contiguous(), cu, False, 0.2)
    )


@needs_kernel
def test_a_long_sequence_and_an_empty_batch(kernel):
    q, k, v, cu = _packed([1500], 2, 1, 64, seed=3)
    exact = attend_per_sequence(q.double(), k.double(), v.double(), [(0, 1500)], True, 0.125, None)
    rows = F.cosine_similarity(kernel(q, k, v, cu, True, 0.125).float().view(-1, 64), exact.float().view(-1, 64))
    assert rows.min() > 0.9999
    empty = torch.empty(0, 2, 64, dtype=torch.bfloat16)
    assert kernel(empty, empty[:, :1], empty[:, :1], torch.tensor([0]), True, 0.1).shape == (0, 128)


@needs_kernel
def test_wrong_inputs_are_refused(kernel):
    q, k, v, cu = _packed([8], 2, 2, 64)
    with pytest.raises(RuntimeError, match="CPU bf16"):
        kernel(q.float(), k.float(), v.float(), cu, True, 0.1)
    with pytest.raises(RuntimeError, match="span"):
        kernel(q, k, v, torch.tensor([0, 7]), True, 0.1)
    q48, k48, v48, cu48 = _packed([8], 2, 2, 48)
    with pytest.raises(RuntimeError, match="multiple of 32"):
        kernel(q48, k48, v48, cu48, True, 0.1)


@needs_kernel
def test_the_backend_routes_bf16_to_the_kernel_and_the_rest_to_sdpa(kernel):
    backend = create_attention_backend("torch_native", "cpu", "bfloat16")
    assert isinstance(backend, TorchNativeBackend) and backend.varlen_kernel is kernel
    assert create_attention_backend("torch_native", "cpu", "float32").varlen_kernel is None
    assert backend.describe() == "torch_native+amx-varlen"
    assert TorchNativeBackend().describe() == "torch_native"
    lengths = [3, 40, 17]
    q, k, v, cu = _packed(lengths, 4, 2, 64, seed=4)
    batch = ForwardBatch.from_sequences([np.zeros(n, dtype=np.int32) for n in lengths], "cpu")
    backend.prepare(batch)
    out = backend.forward(q, k, v, batch, causal=True, scale=0.125)
    assert torch.equal(out, backend.varlen_kernel(q, k, v, cu, True, 0.125))
    assert batch.attn_metadata is None  # no length groups were built for it
    local = backend.forward(q, k, v, batch, causal=False, scale=0.125, window=(4, 4))
    assert torch.equal(local, kernel(q, k, v, cu, False, 0.125, 4, 4))
    # float32, and a head size the kernel does not take: SDPA in length groups
    sdpa = TorchNativeBackend()
    got = backend.forward(q.float(), k.float(), v.float(), batch, causal=False, scale=0.125)
    assert torch.equal(got, sdpa.forward(q.float(), k.float(), v.float(), batch, causal=False, scale=0.125))
    q48, k48, v48, _ = _packed(lengths, 2, 2, 48, seed=5)
    got = backend.forward(q48, k48, v48, batch, causal=True, scale=0.1)
    assert torch.equal(got, sdpa.forward(q48, k48, v48, batch, causal=True, scale=0.1))


@pytest.mark.skipif(
    KERNEL_REASON is not None and "lacks" in KERNEL_REASON, reason="the build is only tried on an AMX CPU"
)
def test_a_failed_build_falls_back_with_one_warning(tmp_path):
    script = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        from engine.attention import create_attention_backend
        print("kernel:", create_attention_backend("torch_native", "cpu", "bfloat16").varlen_kernel)
        """
    )
    # a compiler that always fails, in an empty build cache: the backend must still come up, on SDPA
    env = {
        **os.environ,
        "CXX": "/bin/false",
        "TORCH_EXTENSIONS_DIR": str(tmp_path),
        "EMBEDSERVE_CPU_ATTENTION_KERNEL": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "kernel: None" in result.stdout
    assert "could not build the AMX varlen kernel" in result.stderr
