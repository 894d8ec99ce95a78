"""The engine's own throughput in-process (no HTTP) against sentence-transformers `encode` on the same texts, and
with --engine-api the public `embedserve.Engine.embed` (scheduler and result processes, as the server runs them).

Repetitions are interleaved (engine, library, engine, ...) and medians reported, so all see the same machine.
All sides include tokenization; tokens/s counts real tokens (no padding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus import realistic_texts  # noqa: E402

from engine.model_config import ModelConfig  # noqa: E402
from engine.model_runner import ModelRunner  # noqa: E402
from processes.batch_queue import BatchQueue  # noqa: E402
from processes.messages import EmbedRequest, RawArray  # noqa: E402
from server.launch.args import default_model_path  # noqa: E402


def engine_pass(runner: ModelRunner, tokenizer, texts: list[str], max_tokens: int, context: int) -> np.ndarray:
    ids = tokenizer(texts, truncation=True, max_length=context, return_attention_mask=False)["input_ids"]
    lens = np.array([len(x) for x in ids], dtype=np.int32)
    flat = np.fromiter((t for x in ids for t in x), dtype=np.int32, count=int(lens.sum()))
    queue = BatchQueue(max_tokens, 1 << 30)
    queue.add(EmbedRequest("bench", RawArray.from_numpy(flat), RawArray.from_numpy(lens)))
    outputs = []
    while batch := queue.next_batch():
        outputs = queue.complete(batch, runner.embed([item.token_ids for item in batch]))
    return outputs[0].embeddings.to_numpy()


def min_cosine(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(((ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--num-texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-prefill-tokens", type=int, default=2048)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--no-packed-linear", action="store_true", help="plain F.linear instead of oneDNN-packed weights (the old path)"
    )
    parser.add_argument(
        "--engine-api", action="store_true", help="also time embedserve.Engine.embed (the model in a child process)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.model_path or default_model_path()
    texts = realistic_texts(args.num_texts)

    from sentence_transformers import SentenceTransformer

    library = SentenceTransformer(path, device="cpu")
    config = ModelConfig.load(path, dtype=args.dtype)
    runner = ModelRunner(config, pack_cpu_weights=not args.no_packed_linear)
    tokenizer = library.tokenizer
    context = config.context_length
    tokens = sum(min(len(x), context) for x in tokenizer(texts)["input_ids"])

    def run_engine():
        return engine_pass(runner, tokenizer, texts, args.max_prefill_tokens, context)

    def run_library():
        return library.encode(texts, batch_size=32, convert_to_numpy=True)

    contenders = {"engine": run_engine, "sentence_transformers": run_library}
    api = None
    if args.engine_api:
        from embedserve import Engine

        api = Engine(
            path, dtype=args.dtype, max_prefill_tokens=args.max_prefill_tokens, num_threads=args.threads,
            allow_auto_truncate=True,
        )  # fmt: skip
        contenders["engine_api"] = lambda: api.embed(texts)
    try:
        outputs = {name: fn() for name, fn in contenders.items()}  # warm-up, and the parity of this very run
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        if api is not None:
            api.close()
    theirs = outputs["sentence_transformers"]
    result = {
        "model": path,
        "dtype": args.dtype,
        "threads": args.threads,
        "packed_linear": not args.no_packed_linear,
        "texts": len(texts),
        "tokens": tokens,
        "mean_tokens_per_text": tokens / len(texts),
        "min_cosine_vs_library": min_cosine(outputs["engine"], theirs),
        **{f"{name}_tokens_per_s": tokens / statistics.median(t) for name, t in times.items()},
    }
    result["speedup"] = result["engine_tokens_per_s"] / result["sentence_transformers_tokens_per_s"]
    if "engine_api" in outputs:
        result["engine_api_min_cosine_vs_library"] = min_cosine(outputs["engine_api"], theirs)
        result["engine_api_vs_engine"] = result["engine_api_tokens_per_s"] / result["engine_tokens_per_s"]
        result["engine_api_vs_library"] = (
            result["engine_api_tokens_per_s"] / result["sentence_transformers_tokens_per_s"]
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
