"""What --quantization int8 (and bfloat16) cost in retrieval quality, against sentence-transformers in float32.

Two measures on the same weights, in-process:
- cosine of each vector with the float32 reference, on the benchmarks' realistic texts and on short edge-case texts;
- rank order on a small retrieval set built from the standard library's docstrings (no download): each query is a
  docstring's first line, each document the rest of a docstring. Reported: how many of float32's top 10 documents
  each configuration also ranks in its top 10, and recall@1 / MRR of the query's own document.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus import realistic_texts  # noqa: E402

from engine.model_config import ModelConfig  # noqa: E402
from engine.model_runner import ModelRunner  # noqa: E402
from server.launch.args import default_model_path  # noqa: E402

STDLIB_MODULES = [
    "argparse",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "fractions",
    "functools",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http.client",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "math",
    "mimetypes",
    "os",
    "pathlib",
    "pickle",
    "random",
    "re",
    "shutil",
    "socket",
    "sqlite3",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "unittest",
    "urllib.parse",
    "uuid",
    "zipfile",
    "zlib",
]
EDGE_TEXTS = ["I", "hello", "!!! ??? ... ,,, ;;;", "ok", "3.14159", "New York", "why?", "the the the the"]
CONFIGURATIONS = {  # name -> (dtype, quantization)
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "float32 + int8": ("float32", "int8"),
    "bfloat16 + int8": ("bfloat16", "int8"),
}


def docstring_pairs(limit: int) -> tuple[list[str], list[str]]:
    """(queries, documents): a docstring's first line and its remaining text, for public functions and classes."""
    queries, documents = [], []
    for module_name in STDLIB_MODULES:
        module = importlib.import_module(module_name)
        for name, value in sorted(vars(module).items()):
            if name.startswith("_") or not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            lines = (inspect.getdoc(value) or "").strip().splitlines()
            summary, body = (lines[0].strip(), " ".join(" ".join(lines[1:]).split())) if lines else ("", "")
            if len(summary) >= 20 and len(body) >= 80 and summary not in queries:
                queries.append(summary)
                documents.append(body[:1000])
    return queries[:limit], documents[:limit]


def normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def embed(runner: ModelRunner, tokenizer, texts: list[str], context: int, batch: int = 32) -> np.ndarray:
    rows = []
    for start in range(0, len(texts), batch):
        ids = tokenizer(texts[start : start + batch], truncation=True, max_length=context)["input_ids"]
        rows.append(runner.embed([np.asarray(x, dtype=np.int32) for x in ids]))
    return normalized(np.concatenate(rows))


def ranking_report(queries: np.ndarray, documents: np.ndarray, reference_top: np.ndarray) -> dict:
    scores = queries @ documents.T
    order = np.argsort(-scores, axis=1, kind="stable")
    own_rank = np.argmax(order == np.arange(len(queries))[:, None], axis=1) + 1
    top10 = order[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10, reference_top, strict=True)])
    return {
        "top10_overlap_with_float32": round(float(overlap), 4),
        "recall_at_1": round(float(np.mean(own_rank == 1)), 4),
        "mrr": round(float(np.mean(1.0 / own_rank)), 4),
        "top10": top10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=None, help="default: the embedded all-MiniLM-L6-v2")
    parser.add_argument("--texts", type=int, default=1000, help="realistic texts for the cosine")
    parser.add_argument("--pairs", type=int, default=500, help="most query/document pairs in the retrieval set")
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    model_path = args.model_path or default_model_path()
    texts, (queries, documents) = realistic_texts(args.texts), docstring_pairs(args.pairs)
    library = SentenceTransformer(model_path, device="cpu")
    reference = {
        "realistic": normalized(library.encode(texts)),
        "edge": normalized(library.encode(EDGE_TEXTS)),
        "queries": normalized(library.encode(queries)),
        "documents": normalized(library.encode(documents)),
    }
    reference_rank = ranking_report(reference["queries"], reference["documents"], np.zeros((len(queries), 10)))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    report = {"model": model_path, "pairs": len(queries), "texts": len(texts), "configurations": {}}
    report["configurations"]["sentence-transformers float32"] = {
        k: v for k, v in ranking_report(reference["queries"], reference["documents"], reference_rank["top10"]).items()
        if k != "top10"
    }  # fmt: skip
    for name, (dtype, quantization) in CONFIGURATIONS.items():
        config = ModelConfig.load(model_path, dtype=dtype, quantization=quantization)
        runner = ModelRunner(config)
        ours = {key: embed(runner, tokenizer, rows, config.context_length) for key, rows in
                (("realistic", texts), ("edge", EDGE_TEXTS), ("queries", queries), ("documents", documents))}  # fmt: skip
        cosine = {key: (ours[key] * reference[key]).sum(1) for key in ("realistic", "edge")}
        ranking = ranking_report(ours["queries"], ours["documents"], reference_rank["top10"])
        report["configurations"][name] = {
            "cosine_realistic_min": round(float(cosine["realistic"].min()), 6),
            "cosine_realistic_mean": round(float(cosine["realistic"].mean()), 6),
            "cosine_edge_min": round(float(cosine["edge"].min()), 6),
            **{k: v for k, v in ranking.items() if k != "top10"},
        }
        print(name, report["configurations"][name], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
