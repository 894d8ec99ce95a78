"""A folder whose sentence-transformers pipeline needs something the engine does not implement (here a Dense module's
activation) stops the server at startup with a message naming it, instead of serving vectors without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.launch import REPO_ROOT


def test_an_unimplemented_dense_activation_stops_the_server_at_startup(minilm, tmp_path):
    folder = tmp_path / "minilm-with-dense"
    folder.mkdir()
    for name in ("config.json", "modules.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(Path(minilm) / name, folder / name)
    shutil.copytree(Path(minilm) / "1_Pooling", folder / "1_Pooling")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    dense = {"in_features": 384, "out_features": 64, "bias": True,
             "activation_function": "torch.nn.modules.activation.Softplus"}  # fmt: skip
    (folder / "2_Dense" / "config.json").write_text(json.dumps(dense))
    command = [sys.executable, "-m", "server.launch_server", "--model-path", str(folder), "--is-embedding",
               "--host", "127.0.0.1", "--port", "9"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert "torch.nn.modules.activation.Softplus" in finished.stderr and "2_Dense" in finished.stderr, finished.stderr
