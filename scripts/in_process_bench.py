"""What the in-process A/B scripts share: their model flags, the loaded runner, the realistic mix in batches."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from corpus import realistic_texts  # noqa: E402

from engine.model_config import ModelConfig  # noqa: E402
from engine.model_runner import ModelRunner  # noqa: E402


def add_model_args(parser: argparse.ArgumentParser, texts: int) -> None:
    parser.add_argument("--model-path", help="default: the embedded all-MiniLM-L6-v2")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--texts", type=int, default=texts)
    parser.add_argument("--batch-tokens", type=int, default=2048, help="the CPU scheduler's default budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--enable-torch-compile", action="store_true")


def load_runner(args: argparse.Namespace) -> tuple[ModelRunner, ModelConfig]:
    """The model at --model-path (filled in with the default when absent) on --threads torch threads."""
    if args.model_path is None:
        from server.launch.args import default_model_path

        args.model_path = default_model_path()
    torch.set_num_threads(args.threads)
    config = ModelConfig.load(args.model_path, dtype=args.dtype)
    return ModelRunner(config, compile_elementwise_steps=args.enable_torch_compile), config


def token_batches(args: argparse.Namespace, context: int) -> list[list[np.ndarray]]:
    """--texts of the realistic mix, tokenized and cut at `context`, in batches of at most --batch-tokens."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(args.model_path)(realistic_texts(args.texts))["input_ids"]
    batches: list[list[np.ndarray]] = [[]]
    for seq in (np.asarray(x[:context], dtype=np.int32) for x in ids):
        if batches[-1] and sum(map(len, batches[-1])) + len(seq) > args.batch_tokens:
            batches.append([])
        batches[-1].append(seq)
    return batches


def alternate(
    runner: ModelRunner, batches: list[list[np.ndarray]], settings: dict[str, Callable[[], None]]
) -> tuple[dict[str, float], int]:
    """Each batch once under each setting (a callable that switches the runner to it), the order reversed every
    other batch so the VM's drift falls on both; the first two batches warm up every setting first.

    Returns the seconds spent under each setting and the tokens each one embedded."""
    for batch in batches[:2]:  # first-shape primitives, compiled kernels, JIT-ed matmuls
        for switch in settings.values():
            switch()
            runner.embed(batch)
    seconds = dict.fromkeys(settings, 0.0)
    tokens = 0
    for index, batch in enumerate(batches):
        names = list(settings) if index % 2 == 0 else list(reversed(settings))
        for name in names:
            settings[name]()
            started = time.perf_counter()
            runner.embed(batch)
            seconds[name] += time.perf_counter() - started
        tokens += sum(map(len, batch))
    return seconds, tokens


def ab_report(
    args: argparse.Namespace, batches: list, seconds: dict[str, float], tokens: int, **extra: object
) -> dict[str, object]:
    """The JSON line of an A/B: tokens/s under each setting and the speed-up of the second over the first."""
    before, after = seconds
    return {
        "model": args.model_path,
        "dtype": args.dtype,
        **extra,
        "batches": len(batches),
        "tokens": tokens,
        **{f"{name}_tokens_per_s": round(tokens / value, 1) for name, value in seconds.items()},
        "speedup": round(seconds[before] / seconds[after], 4),
    }


def parse_model_args(doc: str, texts: int) -> argparse.Namespace:
    """The model flags alone, with the script's first docstring line as its description."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_model_args(parser, texts=texts)
    return parser.parse_args()
