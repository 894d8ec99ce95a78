"""The startup summary names everything an operator checks first."""

from __future__ import annotations

from engine.model_config import ModelConfig
from server.launch.args import ServerArgs
from server.launch.startup_summary import startup_summary


def test_summary_names_model_vectors_engine_and_budget(minilm):
    config = ModelConfig.load(minilm, {"matryoshka_dimensions": [128, 64]})
    args = ServerArgs(model_path=minilm, max_prefill_tokens=8192, max_running_requests=32, port=30001)
    line = startup_summary(
        args, config, "mini", {"device": "cpu", "attention_backend": "torch_native", "torch_threads": 2}
    )
    for part in (
        "ready: mini (BertModel)", "pooling=mean", "normalize=True", "dim=384", "matryoshka=64,128",
        "context=256", "dtype=float32", "attention=torch_native", "max_prefill_tokens=8192", "max_running_requests=32",
        "device=cpu threads=2", "http://127.0.0.1:30001",
    ):  # fmt: skip
        assert part in line, part
    any_size = ModelConfig.load(minilm, {"is_matryoshka": True})
    assert "matryoshka=any<=384" in startup_summary(args, any_size, "mini", {})
    on_gpu = startup_summary(args, config, "mini", {"device": "cuda:0", "torch_threads": 16})
    assert "threads=" not in on_gpu  # a GPU's host threads are not its speed


def test_launched_server_logs_the_summary(preset_server):
    summary = next(line for line in preset_server.log().splitlines() if "ready: from-cli" in line)
    assert "attention=torch_native" in summary and "max_prefill_tokens=2048" in summary and "matryoshka=no" in summary
