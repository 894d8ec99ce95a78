"""The pinned wheel set the air-gapped GPU host lacks, and the check that it covers FlashInfer's requirements.

scripts/fetch_gpu_wheels.sh downloads `PINNED` (`--specs` prints it) and runs `--check .whl`: every
requirement of every carried wheel, FlashInfer's METADATA first, must be on the host already, carried at a
version its specifier accepts, or left out in `NOT_CARRIED` with the reason.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

FLASHINFER = "flashinfer-python"

# Each carried once, at one version; the comment says who needs it.
PINNED = {
    FLASHINFER: "0.6.8",  # 0.7.x wheels are 34-101 MB: too big for the tree
    "apache-tvm-ffi": "0.1.15.post2",  # flashinfer: >=0.1.6,<0.2, not 0.1.8; loads the JIT-built kernels
    "nvidia-ml-py": "13.615.71",  # flashinfer: `import pynvml` in flashinfer/utils.py
    "ninja": "1.13.2",  # flashinfer: drives the JIT build (the host's own ninja on PATH wins)
    "click": "8.5.1",  # flashinfer: its command line
    "einops": "0.8.2",  # flashinfer: sparse attention
    "tabulate": "0.10.0",  # flashinfer: its command line
    "cuda-tile": "1.7.0",  # flashinfer: declared, not imported by 0.6.8's Python
    "msgspec": "0.23.0",  # embedserve: the engine imports processes.messages
}

# What `import flashinfer` needs beyond the host: the test environment installs these to check FlashInfer on CPU.
IMPORT_CLOSURE = (FLASHINFER, "apache-tvm-ffi", "nvidia-ml-py")

# What the GPU host already has (shared/guides/gpu.md), with what torch, transformers and requests bring along.
HOST_HAS = {
    "torch", "transformers", "sentence-transformers", "triton", "numpy", "safetensors", "tokenizers", "pillow",
    "uvloop", "requests", "huggingface-hub", "packaging", "pyyaml", "regex", "tqdm", "filelock", "fsspec",
    "jinja2", "markupsafe", "networkx", "sympy", "mpmath", "typing-extensions", "certifi", "charset-normalizer",
    "idna", "urllib3", "scipy", "scikit-learn", "joblib", "threadpoolctl",
}  # fmt: skip

# FlashInfer requirements deliberately left behind: only kernel families the ragged FA2/FA3 prefill never calls
# import them, and nothing imports them at `import flashinfer` (tests/scripts/test_gpu_wheels.py checks that).
NOT_CARRIED = {
    "nvidia-cutlass-dsl": "CuTe-DSL kernels only; its libs-cu13 wheel alone is 92 MB, over the tree's 64 MiB",
    "nvidia-cudnn-frontend": "the cudnn attention backend only; 11.6 MB, and it requires nvidia-cutlass-dsl",
}

# The GPU host: CPython 3.12 on x86-64 Linux; environment markers are evaluated for it.
HOST_MARKERS = {
    "python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "extra": "",
}  # fmt: skip


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def metadata_requirements(metadata_text: str) -> list[str]:
    return Parser().parsestr(metadata_text).get_all("Requires-Dist") or []


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name).decode()


def uncovered(requirements: list[str]) -> list[str]:
    """The requirements (those that apply on the host) that the host, the pinned set and NOT_CARRIED leave open."""
    from packaging.requirements import Requirement

    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(HOST_MARKERS):
            continue
        name = normalize(req.name)
        if name in HOST_HAS or name in NOT_CARRIED:
            continue
        if name not in PINNED:
            problems.append(f"{text}: neither on the host nor pinned")
        elif not req.specifier.contains(PINNED[name], prereleases=True):
            problems.append(f"{text}: pinned {name}=={PINNED[name]} does not satisfy it")
    return problems


def check_folder(folder: Path) -> list[str]:
    """Problems with a folder of downloaded wheels: missing, extra or duplicate packages, uncovered requirements."""
    problems = []
    wheels: dict[str, list[Path]] = {}
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        wheels.setdefault(normalize(name), []).append(wheel)
        if PINNED.get(normalize(name)) != version:
            problems.append(f"{wheel.name}: not in the pinned set")
    for name, version in PINNED.items():
        found = wheels.get(name, [])
        if len(found) != 1:
            problems.append(f"{name}=={version}: {len(found)} wheels in {folder}, want exactly 1")
    for found in wheels.values():
        for wheel in found:
            problems += [f"{wheel.name} requires {p}" for p in uncovered(metadata_requirements(wheel_metadata(wheel)))]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--specs", action="store_true", help="print the pinned set, one name==version a line")
    group.add_argument("--import-specs", action="store_true", help="print only what `import flashinfer` needs")
    group.add_argument("--check", type=Path, metavar="DIR", help="check a folder of downloaded wheels")
    args = parser.parse_args()
    if args.specs or args.import_specs:
        names = IMPORT_CLOSURE if args.import_specs else PINNED
        print("\n".join(f"{name}=={PINNED[name]}" for name in names))
        return
    problems = check_folder(args.check)
    for problem in problems:
        print(f"gpu wheels: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"gpu wheels: {len(PINNED)} pinned wheels cover {FLASHINFER}'s requirements and their own")


if __name__ == "__main__":
    main()
