"""The engine's own throughput in-process (no HTTP) against sentence-transformers `encode` on the same texts.

Repetitions are interleaved (engine, library, engine, ...) and medians reported, so both see the same machine.
Both sides include tokenization; tokens/s counts real tokens (no padding).
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

    ours, theirs = run_engine(), run_library()  # warm-up, and the parity of this very run
    cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    times: dict[str, list[float]] = {"engine": [], "sentence_transformers": []}
    for _ in range(args.repeats):
        for name, fn in (("engine", run_engine), ("sentence_transformers", run_library)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {
        "model": path,
        "dtype": args.dtype,
        "threads": args.threads,
        "packed_linear": not args.no_packed_linear,
        "texts": len(texts),
        "tokens": tokens,
        "mean_tokens_per_text": tokens / len(texts),
        "min_cosine_vs_library": float(cos.min()),
        **{f"{name}_tokens_per_s": tokens / statistics.median(t) for name, t in times.items()},
    }
    result["speedup"] = result["engine_tokens_per_s"] / result["sentence_transformers_tokens_per_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
