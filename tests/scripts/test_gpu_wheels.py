"""The wheels carried to the air-gapped GPU host cover FlashInfer 0.6.8's requirements and what the check imports."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from scripts.gpu_wheels import FLASHINFER, HOST_HAS, NOT_CARRIED, PINNED, check_folder, normalize, uncovered
from tests.support.flashinfer_source import (
    SOURCE_ROOT,
    find_definition,
    flashinfer_package,
    method_node,
    signature_of,
)
from tests.support.launch import REPO_ROOT


def flashinfer_metadata() -> str:
    return (flashinfer_package().parent / f"flashinfer_python-{PINNED[FLASHINFER]}.dist-info" / "METADATA").read_text()


def test_the_pinned_set_covers_flashinfers_metadata_and_matches_the_gpu_extra():
    requirements = importlib.metadata.Distribution.at(
        flashinfer_package().parent / f"flashinfer_python-{PINNED[FLASHINFER]}.dist-info"
    ).requires
    assert any(r.startswith("apache-tvm-ffi") for r in requirements) and any("nvidia-ml-py" in r for r in requirements)
    assert uncovered(requirements) == []
    assert f'gpu = ["{FLASHINFER}=={PINNED[FLASHINFER]}"]' in (REPO_ROOT / "pyproject.toml").read_text()


def test_uncovered_names_what_is_missing_or_pinned_outside_the_range():
    assert uncovered(["mystery-package>=1"]) == ["mystery-package>=1: neither on the host nor pinned"]
    assert uncovered(["apache-tvm-ffi>=0.2"]) == [
        f"apache-tvm-ffi>=0.2: pinned apache-tvm-ffi=={PINNED['apache-tvm-ffi']} does not satisfy it"
    ]
    assert uncovered(["tomli; python_version < '3.11'", "torch", "nvidia-cutlass-dsl>=4.4.2"]) == []


def write_wheel(folder: Path, name: str, version: str, metadata: str = "") -> Path:
    wheel = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata or f"Name: {name}\n")
    return wheel


def test_a_wheel_folder_is_checked_for_missing_duplicate_and_uncovered_wheels(tmp_path):
    for name, version in PINNED.items():
        write_wheel(tmp_path, name, version, flashinfer_metadata() if name == FLASHINFER else "")
    assert check_folder(tmp_path) == []
    write_wheel(tmp_path, "msgspec", "0.1.0")  # a stale second version from an earlier fetch
    (tmp_path / f"einops-{PINNED['einops']}-py3-none-any.whl").unlink()
    write_wheel(tmp_path, "click", PINNED["click"], "Name: click\nRequires-Dist: mystery-package\n")
    problems = check_folder(tmp_path)
    assert "msgspec-0.1.0-py3-none-any.whl: not in the pinned set" in problems
    assert f"msgspec=={PINNED['msgspec']}: 2 wheels in {tmp_path}, want exactly 1" in problems
    assert f"einops=={PINNED['einops']}: 0 wheels in {tmp_path}, want exactly 1" in problems
    assert any("mystery-package: neither on the host nor pinned" in p for p in problems)


def requirement_closure(roots: set[str]) -> set[str]:
    """`roots` and everything they require here (the host has them with their requirements)."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalize(req.name))
    return seen


# Runs with every distribution hidden that is neither on the GPU host nor carried, as the host would be.
AUDIT = r"""
import importlib.abc, importlib.metadata, importlib.util, inspect, json, os, runpy, sys
allowed = set(json.loads(os.environ["ALLOWED_DISTS"]))
owners = importlib.metadata.packages_distributions()
for dist in importlib.metadata.distributions(path=[os.environ["FLASHINFER_SOURCE"]]):
    for f in dist.files or []:
        owners.setdefault(str(f).split("/")[0].removesuffix(".py"), []).append(dist.metadata["Name"])
hidden = []
def is_hidden(name):
    dists = owners.get(name.partition(".")[0])
    if not dists or any(d.lower().replace("_", "-") in allowed for d in dists):
        return False
    hidden.append(name.partition(".")[0])
    return True
class HideWhatTheHostLacks(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if is_hidden(name):
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU host)", name=name)
sys.meta_path.insert(0, HideWhatTheHostLacks())
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if is_hidden(name) else real_find_spec(name, package)
import flashinfer
from flashinfer.jit import build_jit_specs, gen_batch_prefill_module
from flashinfer.utils import determine_attention_backend
runpy.run_path("scripts/gpu_check.py")
runpy.run_path("scripts/gpu_kernels.py")
import transformers
transformers.BertModel, transformers.Qwen3Model
W = flashinfer.BatchPrefillWithRaggedKVCacheWrapper
callables = {"__init__": W.__init__, "plan": W.plan, "run": W.run, "build_jit_specs": build_jit_specs,
             "gen_batch_prefill_module": gen_batch_prefill_module,
             "determine_attention_backend": determine_attention_backend}
print(json.dumps({"version": flashinfer.__version__, "hidden": sorted(set(hidden)),
                  "signatures": {k: [(p.name, p.kind.name) for p in inspect.signature(f).parameters.values()]
                                 for k, f in callables.items()}}))
"""


def test_the_check_and_flashinfer_import_with_only_the_hosts_packages_and_the_carried_wheels():
    allowed = requirement_closure(HOST_HAS) | set(PINNED) | {"embedserve"}  # the tree itself travels
    assert not allowed & set(NOT_CARRIED)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SOURCE_ROOT), str(REPO_ROOT)]),
        ALLOWED_DISTS=json.dumps(sorted(allowed)),
        FLASHINFER_SOURCE=str(SOURCE_ROOT),
        HF_HUB_OFFLINE="1",
    )
    flashinfer_package()
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["version"] == PINNED[FLASHINFER]
    # what the test environment has beyond the host was really hidden, and the imports still worked
    assert "accelerate" in report["hidden"] or importlib.util.find_spec("accelerate") is None
    # the signatures the CPU binding tests parse from source are the ones Python builds on import
    package = flashinfer_package()
    wrapper = find_definition(package, "", "BatchPrefillWithRaggedKVCacheWrapper")
    parsed = {m: signature_of(method_node(wrapper, m)) for m in ("__init__", "plan", "run")}
    parsed["build_jit_specs"] = signature_of(find_definition(package, "jit", "build_jit_specs"))
    parsed["gen_batch_prefill_module"] = signature_of(find_definition(package, "jit", "gen_batch_prefill_module"))
    parsed["determine_attention_backend"] = signature_of(
        find_definition(package, "utils", "determine_attention_backend")
    )
    for name, sig in parsed.items():
        assert [[p.name, p.kind.name] for p in sig.parameters.values()] == report["signatures"][name], name
