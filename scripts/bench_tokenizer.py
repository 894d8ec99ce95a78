"""Microseconds per text for the frontend's tokenizing: transformers' call against the direct Rust path."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus import realistic_texts, short_text  # noqa: E402

from engine.model_config import ModelConfig  # noqa: E402
from server.inputs.tokenizer_manager import TokenizerManager  # noqa: E402
from server.launch.args import default_model_path  # noqa: E402


def microseconds_per_text(manager: TokenizerManager, texts: list[str]) -> float:
    for text in texts[:20]:
        manager._encode([text])
    start = time.perf_counter()
    for text in texts:
        manager._encode([text])  # one text per call, as one-input requests arrive
    return (time.perf_counter() - start) / len(texts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--num-texts", type=int, default=500)
    args = parser.parse_args()
    manager = TokenizerManager(ModelConfig.load(args.model_path or default_model_path()), False, True)
    direct = manager._backend
    for name, texts in (("short", [short_text()] * args.num_texts), ("realistic", realistic_texts(args.num_texts))):
        manager._backend = None
        wrapper_us = microseconds_per_text(manager, texts)
        manager._backend = direct
        direct_us = microseconds_per_text(manager, texts)
        print(
            json.dumps(
                {"texts": name, "transformers_call_us": round(wrapper_us, 1), "rust_direct_us": round(direct_us, 1)}
            )
        )


if __name__ == "__main__":
    main()
