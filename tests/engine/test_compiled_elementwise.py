"""--enable-torch-compile: Inductor's RMSNorm and rotary give the eager results, the model still matches
transformers, and a failed compile leaves the eager code in place."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from engine.layers import compiled_elementwise
from engine.layers.compiled_elementwise import COMPILED, compile_elementwise
from engine.layers.norm import RMSNorm
from engine.layers.rotary import apply_rotary
from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import assert_batch_invariant, assert_close_vectors
from tests.support.decoder_reference import engine_vectors, transformers_last_token_vectors
from tests.support.launch import REPO_ROOT
from tests.support.texts import varied_texts


@pytest.fixture
def compiled():
    """Compiled kernels for one test; the process's other tests keep running eager."""
    assert compile_elementwise(torch.float32)
    yield
    COMPILED.clear()


def test_compiled_steps_equal_the_eager_ones(compiled):
    norm = RMSNorm(64, 1e-6)
    norm.weight.data = torch.randn(64)
    x = torch.randn(37, 4, 64) * 3
    cos, sin = torch.randn(37, 1, 32), torch.randn(37, 1, 32)
    with_compile = norm(x), apply_rotary(x, cos, sin)
    COMPILED.clear()
    eager = norm(x), apply_rotary(x, cos, sin)
    for actual, expected in zip(with_compile, eager, strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert compiled_elementwise.rms_norm_formula(x, norm.weight, 1e-6).shape == x.shape


def test_compiled_qwen3_matches_transformers(compiled, tiny_qwen3_embedding):
    from transformers import AutoTokenizer

    config = ModelConfig.load(tiny_qwen3_embedding)
    runner = ModelRunner(config, compile_elementwise_steps=True)
    assert set(COMPILED) == {"rms_norm", "rotary"}
    ids = AutoTokenizer.from_pretrained(tiny_qwen3_embedding)(varied_texts(16, long_words=90))["input_ids"]
    expected = transformers_last_token_vectors(tiny_qwen3_embedding, ids)
    assert_close_vectors(engine_vectors(runner, ids), expected)
    assert_batch_invariant(runner, [torch.tensor(x).int().numpy() for x in ids[:8]])


def test_a_failed_compile_keeps_eager(tmp_path):
    """No C++ compiler (CXX names none, fresh cache): the server would log it and serve eagerly."""
    code = (
        "import torch; from engine.layers.compiled_elementwise import COMPILED, compile_elementwise; "
        "print(compile_elementwise(torch.float32), len(COMPILED))"
    )
    env = {"PATH": "/usr/bin:/bin", "CXX": str(tmp_path / "no-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "0"]
    assert "compiling failed, running eager instead" in proc.stderr
