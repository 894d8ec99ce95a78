"""Imports point one way (embedserve -> server -> processes -> engine); engine/ needs only its allow-listed libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lowest first: a package may import only its own layer and those below; embedserve is the public facade on top
LAYERS = ("engine", "processes", "server", "embedserve")

# Every library engine/ may import besides the standard library, and why the engine needs it.
ENGINE_LIBRARIES = {
    "torch": "the tensors, layers and collectives of every forward pass",
    "numpy": "host-side arrays: token ids, offsets, pixels and pooled vectors",
    "safetensors": "reads checkpoint weights, each rank only its slices",
    "tqdm": "the progress bar while a large model's weights load",
    "msgspec": "the typed converter that reads config.json into frozen structs, once (engine/arch_config.py)",
    "flashinfer": "the GPU attention kernels, an optional extra imported lazily by its backend",
}
# transformers is allowed for reading configs and tokenizers only, never for its model code.
_TRANSFORMERS_NAME_ENDINGS = ("Config", "Tokenizer", "TokenizerFast")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import anywhere in `source`, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):  # walks function bodies and `if TYPE_CHECKING:` blocks too
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level == 0:
                found.append((node.module or "", names, node.lineno))
                continue
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
            found.append((target, names, node.lineno))
    return found


def layer_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports in `module` that reach a higher layer than its own."""
    rank = LAYERS.index(module.split(".")[0])
    return [
        f"{module}:{line} imports {target}"
        for target, _, line in imports_of(source, module, is_package)
        if target.split(".")[0] in LAYERS and LAYERS.index(target.split(".")[0]) > rank
    ]


def _engine_may_import(target: str, names: list[str]) -> bool:
    top = target.split(".")[0]
    if top in LAYERS:
        return top == "engine"
    if top in sys.stdlib_module_names or top in ENGINE_LIBRARIES:
        return True
    if top == "transformers":
        if any("configuration" in part or "tokenization" in part for part in target.split(".")[1:]):
            return True
        return target == "transformers" and bool(names) and all(n.endswith(_TRANSFORMERS_NAME_ENDINGS) for n in names)
    return False


def _sources(package: str) -> list[tuple[str, str, bool]]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [(_module_name(p), p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in files]


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_a_higher_layer(package):
    sources = _sources(package)
    assert sources, f"found no modules under {package}/"
    violations = [v for module, source, is_pkg in sources for v in layer_violations(source, module, is_pkg)]
    assert violations == []


def test_processes_do_not_import_the_http_stack():
    http = ("fastapi", "starlette", "uvicorn", "uvloop", "httpx")
    found = [
        f"{module}:{line} imports {target}"
        for module, source, is_pkg in _sources("processes")
        for target, _, line in imports_of(source, module, is_pkg)
        if target.split(".")[0] in http
    ]
    assert found == []


def test_engine_imports_only_torch_numpy_safetensors_and_transformers_configs():
    outside = [
        f"{module}:{line} imports {target} {names or ''}"
        for module, source, is_pkg in _sources("engine")
        for target, names, line in imports_of(source, module, is_pkg)
        if not _engine_may_import(target, names)
    ]
    assert outside == []


def test_the_checker_sees_imports_in_functions_and_resolves_relative_ones():
    source = """
from engine.forward_batch import ForwardBatch
from . import messages

def later():
    from server.launch.args import ServerArgs
"""
    assert layer_violations(source, "processes.scheduler_process") == [
        "processes.scheduler_process:6 imports server.launch.args"
    ]
    assert imports_of("from .base import X", "engine.attention", is_package=True) == [
        ("engine.attention.base", ["X"], 1)
    ]
    assert imports_of("from .. import pooling", "engine.attention.torch_native") == [("engine", ["pooling"], 1)]
    assert not _engine_may_import("transformers.models.bert.modeling_bert", ["BertModel"])
    assert not _engine_may_import("transformers", ["BertModel"])
    assert _engine_may_import("transformers", ["AutoConfig", "PreTrainedTokenizerFast"])
    assert not _engine_may_import("fastapi", ["FastAPI"])


def test_flag_parsing_and_help_do_not_import_torch():
    # --help and a bad flag must answer at once: the launcher, which loads torch, is imported after parsing.
    probe = """
import runpy, sys
from server.launch.cli import parse_serve_args
parse_serve_args(["--tp-size", "2", "--attention-backend", "sdpa", "--port", "30001"])
sys.argv = ["server.launch_server", "--help"]
try:
    runpy.run_module("server.launch_server", run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
heavy = sorted(name for name in ("torch", "transformers", "fastapi", "uvicorn") if name in sys.modules)
print("heavy:", heavy)
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert "--model-path" in result.stdout
    assert result.stdout.strip().endswith("heavy: []")
