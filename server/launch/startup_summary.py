"""The one log line that says what a started server serves and how: model, vectors, engine, budget, address."""

from __future__ import annotations

from engine.model_config import ModelConfig
from server.launch.args import ServerArgs


def matryoshka_label(config: ModelConfig) -> str:
    if config.matryoshka_dimensions:
        return ",".join(str(d) for d in config.matryoshka_dimensions)
    return f"any<={config.embedding_dim}" if config.is_matryoshka else "no"


def _outputs_label(config: ModelConfig) -> str:
    if config.task == "score":
        return f"reranker activation={config.score_activation}"
    return (
        f"pooling={config.pooling} normalize={config.normalize} dim={config.embedding_dim} "
        f"matryoshka={matryoshka_label(config)}"
    )


def startup_summary(args: ServerArgs, config: ModelConfig, served_model_name: str, engine_info: dict) -> str:
    return (
        f"ready: {served_model_name} ({config.architecture}) {_outputs_label(config)} context={config.context_length} "
        f"dtype={config.dtype}{f' quantization={config.quantization}' if config.quantization else ''} attention={engine_info.get('attention_backend', args.attention_backend)} "
        f"max_prefill_tokens={args.max_prefill_tokens} max_running_requests={args.max_running_requests} "
        f"device={engine_info.get('device', args.device)}{_threads_label(engine_info)}{_parallel_label(args)} "
        f"on http://{args.host}:{args.port}"
    )


def _threads_label(engine_info: dict) -> str:
    # torch threads per rank: on a GPU they only feed it, so only the CPU's are worth a word
    if not str(engine_info.get("device", "")).startswith("cpu") or "torch_threads" not in engine_info:
        return ""
    return f" threads={engine_info['torch_threads']}"


def _parallel_label(args: ServerArgs) -> str:
    if args.tp_size == 1 and args.dp_size == 1:
        return ""
    nodes = f" nnodes={args.nnodes}" if args.nnodes > 1 else ""
    return f" tp={args.tp_size} dp={args.dp_size}{nodes}"
