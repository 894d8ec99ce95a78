"""The engine behind any frontend: the model's config checked, the scheduler ranks and result process started and
ready, the tokenizer (and image preprocessor) loaded; shared by the HTTP server and the in-process `embedserve.Engine`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from engine.model_config import ModelConfig, ModelConfigError
from engine.models.registry import UnsupportedModelError
from processes.heartbeat import ReplicaHeartbeats
from processes.ipc import IpcAddresses
from processes.result_process import run_result_process
from processes.scheduler_config import SchedulerConfig
from server.inputs.pair_tokenizer import PairTokenizer, PairTokenizerError
from server.inputs.prompts import check_default_prompt_name
from server.inputs.qwen3_reranker_pairs import Qwen3RerankerPairs
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs, ServerArgsError, default_model_path
from server.launch.rank_processes import (
    StartupError,
    scheduler_config,
    start_scheduler_ranks,
    stop_children,
    wait_until_ready,
)
from server.launch.topology import gpu_shortage, tensor_parallel_problem

logger = logging.getLogger("embedserve")


class LaunchError(RuntimeError):
    """The engine cannot start; `exit_code` is what the server exits with (2: the model or flags, 1: a child failed)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def resolve_model(args: ServerArgs) -> tuple[ModelConfig, SchedulerConfig]:
    """Fill in the defaults the children and /get_server_info must see, then load and check the model's config."""
    if args.model_path is None:
        args.model_path = default_model_path()
        logger.info("no --model-path given: serving the embedded default all-MiniLM-L6-v2 from %s", args.model_path)
    device = args.resolved_device()
    args.max_prefill_tokens = args.resolved_max_prefill_tokens(device)
    try:
        model_config = ModelConfig.load(
            args.model_path, args.model_overrides(), args.context_length, args.dtype, device, args.quantization
        )
        check_default_prompt_name(args.default_prompt_name, model_config.st_info)
    except (ModelConfigError, UnsupportedModelError, ServerArgsError, OSError) as error:
        raise LaunchError(f"cannot serve {args.model_path}: {error}", 2) from error
    problem = tensor_parallel_problem(model_config, args.tp_size) or gpu_shortage(args, device)
    if problem is not None:
        raise LaunchError(f"cannot serve {args.model_path} with --tp-size {args.tp_size}: {problem}", 2)
    return model_config, scheduler_config(args, model_config, device)


@dataclass
class EngineProcesses:
    """This node's running engine: its children, the sockets' folder, and what turns inputs into token ids."""

    args: ServerArgs
    model_config: ModelConfig
    served_model_name: str
    ipc: IpcAddresses
    heartbeat: ReplicaHeartbeats
    children: list[BaseProcess]
    tokenizer: TokenizerManager
    multimodal: Any  # server.inputs.multimodal.MultimodalProcessor for multimodal models, else None
    pairs: PairTokenizer | Qwen3RerankerPairs | None  # query-document pairs, for a reranker
    engine_info: dict  # what the schedulers reported when ready (device, attention backend)

    @classmethod
    def start(cls, args: ServerArgs, model_config: ModelConfig, scheduler: SchedulerConfig) -> EngineProcesses:
        """Start the children, load the tokenizer while the model loads, and wait until every child is ready."""
        if model_config.spec.multimodal is None and args.image_processor_kwargs():
            raise LaunchError(
                f"cannot serve {args.model_path}: --mm-processor-kwargs is for models that take images", 2
            )
        ctx = multiprocessing.get_context("spawn")
        served_model_name = args.served_model_name or str(args.model_path)
        ipc, heartbeat = IpcAddresses.create(), ReplicaHeartbeats(ctx, args.dp_size)
        children: list[BaseProcess] = []
        multimodal = None
        try:
            children = _start_children(ctx, args, scheduler, served_model_name, ipc, heartbeat)
            tokenizer = TokenizerManager(model_config, args.trust_remote_code, args.allow_auto_truncate)
            if model_config.spec.multimodal is not None:
                from server.inputs.multimodal import MultimodalProcessor

                try:
                    multimodal = MultimodalProcessor(model_config, args, tokenizer)
                except (ValueError, OSError) as error:
                    raise LaunchError(f"cannot serve {args.model_path}: {error}", 2) from error
            pairs = None
            if model_config.task == "score":
                try:
                    layout = Qwen3RerankerPairs if model_config.spec.pair_format == "qwen3_reranker" else PairTokenizer
                    pairs = layout(tokenizer.tokenizer, model_config.context_length)
                except PairTokenizerError as error:
                    raise LaunchError(f"cannot serve {args.model_path}: {error}", 2) from error
            engine_info = wait_until_ready(children)
        except BaseException as error:
            _stop(children, multimodal, ipc)
            if isinstance(error, StartupError):
                raise LaunchError(f"startup failed: {error}", 1) from error
            raise
        return cls(
            args, model_config, served_model_name, ipc, heartbeat, children, tokenizer, multimodal, pairs, engine_info
        )

    def stop(self) -> None:
        """Kill every child, stop the image workers and remove the sockets' folder; safe to call twice."""
        _stop(self.children, self.multimodal, self.ipc)


def _stop(children: list[BaseProcess], multimodal: Any, ipc: IpcAddresses) -> None:
    stop_children(children)
    if multimodal is not None:
        multimodal.pool.shutdown(wait=True, cancel_futures=True)
    ipc.remove()


def _start_children(
    ctx: SpawnContext,
    args: ServerArgs,
    scheduler: SchedulerConfig,
    served_model_name: str,
    ipc: IpcAddresses,
    heartbeats: ReplicaHeartbeats,
) -> list[BaseProcess]:
    """The result process, then this node's scheduler ranks (one per rank of every replica)."""
    result_ready, result_ready_w = ctx.Pipe(duplex=False)
    result = ctx.Process(
        target=run_result_process,
        args=(ipc, served_model_name, scheduler.model.normalize, args.log_level, result_ready_w),
        name="embedserve-result",
    )
    children: list[BaseProcess] = [result]
    result.start()
    result_ready_w.close()
    result.ready_conn = result_ready  # type: ignore[attr-defined]
    try:
        children += start_scheduler_ranks(ctx, args, scheduler, ipc, heartbeats)
    except BaseException:
        stop_children(children)
        raise
    return children


def watch_children(
    loop: asyncio.AbstractEventLoop, children: list[BaseProcess], on_death: Callable[[str], None]
) -> None:
    """Call `on_death(reason)` on `loop` when the first child ends: its sentinel becomes readable, no polling."""

    def died(proc: BaseProcess) -> None:
        for p in children:
            loop.remove_reader(p.sentinel)
        proc.join(timeout=1)
        on_death(f"{proc.name} died with exit code {proc.exitcode}")

    for proc in children:
        loop.add_reader(proc.sentinel, died, proc)


def unwatch_children(loop: asyncio.AbstractEventLoop, children: list[BaseProcess]) -> None:
    for proc in children:
        loop.remove_reader(proc.sentinel)
