"""The AMX varlen attention kernel (csrc/varlen_attention_cpu.cpp): built once per machine, None where it can't run."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "varlen_attention_cpu.cpp"
# The CPU features the kernel's code and oneDNN's brgemm need: AVX-512 with bf16 conversions, and AMX tiles.
REQUIRED_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile", "amx_bf16")
COMPILE_FLAGS = [
    "-O3",
    "-fopenmp",  # ATen's parallel_for is an OpenMP region written in its header: without it, one thread
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512dq",
    "-mavx512bf16",
    # ATen's vector header picks its AVX-512 implementation from these (torch's own build sets them per file)
    "-DCPU_CAPABILITY=AVX512",
    "-DCPU_CAPABILITY_AVX512",
]
ENV_SWITCH = "EMBEDSERVE_CPU_ATTENTION_KERNEL"  # 0: never use the kernel (torch's SDPA in length groups)

# (q, k, v, cu_seqlens, causal, scale, window_left, window_right) -> (tokens, heads * head_dim); a bound of -1: none
VarlenAttention = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool, float, int, int], torch.Tensor
]


def missing_cpu_flags(cpuinfo: str) -> list[str]:
    """The REQUIRED_FLAGS absent from the first `flags` line of a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            present = set(line.partition(":")[2].split())
            return [flag for flag in REQUIRED_FLAGS if flag not in present]
    return list(REQUIRED_FLAGS)


def unavailable_reason() -> str | None:
    """Why the kernel cannot run here, without building it; None when it may."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"{ENV_SWITCH}=0"
    if not sys.platform.startswith("linux"):
        return "not Linux"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError as exc:
        return f"cannot read /proc/cpuinfo: {exc}"
    if missing := missing_cpu_flags(cpuinfo):
        return f"the CPU lacks {', '.join(missing)}"
    return None


@functools.cache
def load_varlen_attention() -> VarlenAttention | None:
    """The kernel's op, built on first use (about 8 s, then cached under TORCH_EXTENSIONS_DIR); None, with one
    log line saying why, where it cannot run or fails to build."""
    if (reason := unavailable_reason()) is not None:
        logger.info("attention: the AMX varlen kernel is off (%s)", reason)
        return None
    started = time.monotonic()
    try:
        _build()
        supported = bool(torch.ops.embedserve_cpu.supported())
    except Exception as exc:  # a missing compiler, a read-only cache, an ABI mismatch: fall back, never fail
        logger.warning("attention: could not build the AMX varlen kernel (%s: %s); using SDPA", type(exc).__name__, exc)
        return None
    if not supported:
        logger.info("attention: oneDNN offers no packed bf16 brgemm here; the AMX varlen kernel is off")
        return None
    logger.info("attention: AMX varlen kernel ready in %.1f s", time.monotonic() - started)
    return torch.ops.embedserve_cpu.varlen_attention


def _build() -> None:
    from torch.utils.cpp_extension import load

    env_path = os.environ.get("PATH")
    venv_bin = str(Path(sys.executable).parent)
    if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin):
        # torch builds with ninja; the one pip installed sits beside this interpreter, which may not be on PATH
        os.environ["PATH"] = os.pathsep.join(filter(None, [venv_bin, env_path]))
    try:
        load(
            # one build per torch release: a library built against another torch's ABI would not load
            name="embedserve_cpu_attention_" + re.sub(r"\W", "_", torch.__version__),
            sources=[str(SOURCE)],
            extra_cflags=COMPILE_FLAGS,
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
    finally:  # the process's PATH as it was, unset included
        if env_path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = env_path
