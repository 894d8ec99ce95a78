"""Which attention backend runs: auto, explicit choices, and the per-model fallback from FlashInfer."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from engine.attention import AttentionBackendError, choose_backend_name
from engine.attention.flashinfer_backend import build_metadata
from engine.forward_batch import ForwardBatch
from tests.support.launch import REPO_ROOT

PYNVML_MISSING = "import flashinfer failed: ModuleNotFoundError: No module named 'pynvml'"


def works() -> None:
    return None


def fails() -> str:
    return PYNVML_MISSING


def never_probed() -> str:
    raise AssertionError("FlashInfer was imported where it cannot be used")


def test_auto_is_torch_native_on_cpu_without_importing_flashinfer():
    assert choose_backend_name("auto", "cpu", {64}, "float32", never_probed) == "torch_native"


def test_auto_picks_flashinfer_on_cuda_only_when_its_import_works(caplog):
    assert choose_backend_name("auto", "cuda", {128}, "bfloat16", works) == "flashinfer"
    with caplog.at_level(logging.WARNING):
        assert choose_backend_name("auto", "cuda", {128}, "bfloat16", fails) == "torch_native"
    assert "No module named 'pynvml'" in caplog.text  # the log says why


def test_unsupported_shapes_fall_back_with_a_log_line(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_backend_name("flashinfer", "cuda", {32}, "bfloat16", works) == "torch_native"
    assert "head size [32]" in caplog.text
    assert choose_backend_name("auto", "cuda", {64}, "float32", never_probed) == "torch_native"


def test_explicit_flashinfer_fails_clearly_where_it_cannot_run():
    with pytest.raises(AttentionBackendError, match="needs a CUDA device"):
        choose_backend_name("flashinfer", "cpu", {64}, "bfloat16", never_probed)
    with pytest.raises(AttentionBackendError, match="cannot run: import flashinfer failed: .*pynvml"):
        choose_backend_name("flashinfer", "cuda", {64}, "bfloat16", fails)
    with pytest.raises(AttentionBackendError, match="not one of"):
        choose_backend_name("xformers", "cpu", {64}, "float32")
    with pytest.raises(AttentionBackendError, match="not one of"):
        choose_backend_name("triton", "cuda", {64}, "bfloat16")  # SGLang's name; no triton kernels here


def test_flashinfer_metadata_is_the_packed_offsets_on_the_host():
    import numpy as np

    batch = ForwardBatch.from_sequences([np.arange(3), np.arange(5), np.arange(1)], "cpu")
    meta = build_metadata(batch)
    assert meta.indptr_host.dtype == torch.int32 and meta.indptr_host.device.type == "cpu"
    assert meta.indptr_host.tolist() == batch.cu_seqlens.tolist() == [0, 3, 8, 9] and meta.planned == set()


@pytest.mark.parametrize(
    "init_body, expected",
    [
        ("import pynvml_absent_here", "ModuleNotFoundError: No module named 'pynvml_absent_here'"),
        ("raise RuntimeError('CUDA driver is too old')", "RuntimeError: CUDA driver is too old"),
    ],
)
def test_the_real_import_probe_reports_why_an_installed_flashinfer_fails(tmp_path, init_body, expected):
    """A package that is found but whose import fails, as flashinfer without pynvml does on the GPU host."""
    (tmp_path / "flashinfer").mkdir()
    (tmp_path / "flashinfer" / "__init__.py").write_text(init_body + "\n")
    script = textwrap.dedent(
        """
        import importlib.util
        from engine.attention import choose_backend_name, flashinfer_import_error
        assert importlib.util.find_spec("flashinfer") is not None
        print(flashinfer_import_error())
        print(choose_backend_name("auto", "cuda", {128}, "bfloat16"))
        try:
            choose_backend_name("flashinfer", "cuda", {128}, "bfloat16")
        except ValueError as exc:
            print(exc)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe, chosen, error = proc.stdout.splitlines()
    assert probe == f"import flashinfer failed: {expected}"
    assert chosen == "torch_native" and "using torch_native" in proc.stderr and expected in proc.stderr
    assert (
        error
        == f"--attention-backend flashinfer cannot run: import flashinfer failed: {expected} (pip install 'embedserve[gpu]')"
    )
