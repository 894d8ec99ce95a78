"""The GPU check's up-front kernel build binds to FlashInfer 0.6.8's real JIT functions, checked on the CPU."""

from __future__ import annotations

import ast
import enum
import sys
import types

import pytest
import torch

from scripts.gpu_kernels import build_kernels, kernel_variants
from tests.support.flashinfer_source import (
    Recorder,
    find_definition,
    flashinfer_package,
    stand_in_function,
    stand_in_modules,
)


def parsed_enum(name: str) -> type[enum.Enum]:
    """An Enum with the members and values the pinned source declares."""
    node = find_definition(flashinfer_package(), "utils", name)
    members = {t.id: ast.literal_eval(n.value) for n in node.body if isinstance(n, ast.Assign) for t in n.targets}
    return enum.Enum(name, members)


@pytest.fixture
def recorded_jit(monkeypatch):
    recorder = Recorder()
    package = flashinfer_package()

    def spec(**args):
        return types.SimpleNamespace(name=f"prefill_{args['backend']}_{args['dtype_q']}_{args['head_dim_qk']}")

    modules = stand_in_modules(
        {
            "flashinfer.jit": {
                "build_jit_specs": stand_in_function(package, "jit", "build_jit_specs", recorder, None),
                "gen_batch_prefill_module": stand_in_function(
                    package, "jit", "gen_batch_prefill_module", recorder, spec
                ),
            },
            "flashinfer.utils": {
                "PosEncodingMode": parsed_enum("PosEncodingMode"),
                "determine_attention_backend": stand_in_function(
                    package, "utils", "determine_attention_backend", recorder, lambda **_: "fa3"
                ),
            },
        }
    )
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return recorder


def test_the_variants_are_the_checked_models_head_sizes_in_bf16_only():
    assert kernel_variants(["float32", "bfloat16"]) == [("bfloat16", 64), ("bfloat16", 128)]


def test_one_build_call_gets_every_variant_with_the_arguments_plan_uses(recorded_jit):
    result = build_kernels([("bfloat16", 64), ("bfloat16", 128)], "cpu")
    assert result["modules"] == ["prefill_fa3_torch.bfloat16_64", "prefill_fa3_torch.bfloat16_128"]
    assert result["build_seconds"] >= 0
    chosen = recorded_jit.named("determine_attention_backend")
    assert [c.arguments["dtype_q"] for c in chosen] == [torch.bfloat16, torch.bfloat16]
    generated = recorded_jit.named("gen_batch_prefill_module")
    for call, head_dim in zip(generated, (64, 128), strict=True):
        assert call.arguments == {
            "backend": "fa3", "dtype_q": torch.bfloat16, "dtype_kv": torch.bfloat16, "dtype_o": torch.bfloat16,
            "dtype_idx": torch.int32, "head_dim_qk": head_dim, "head_dim_vo": head_dim, "pos_encoding_mode": 0,
            "use_sliding_window": False, "use_logits_soft_cap": False, "use_fp16_qk_reduction": False,
        }  # fmt: skip
    (build,) = recorded_jit.named("build_jit_specs")  # one parallel ninja run, not one per variant
    assert len(build.arguments["specs"]) == 2 and build.arguments["verbose"] is False
