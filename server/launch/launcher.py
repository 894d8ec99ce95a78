"""Starts the scheduler ranks and the result process, waits until the model is warm, serves HTTP, and stops them all.

With --node-rank above 0 it runs only this node's ranks (server/launch/worker_node.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from multiprocessing.process import BaseProcess

import uvicorn
import uvloop

from engine.model_config import ModelConfig, ModelConfigError
from engine.models.registry import UnsupportedModelError
from processes.heartbeat import ReplicaHeartbeats
from processes.ipc import IpcAddresses
from processes.result_process import run_result_process
from processes.scheduler_config import SchedulerConfig
from server.http.app import FrontendState, build_app
from server.http.engine_client import EngineClient
from server.inputs.pair_tokenizer import PairTokenizer, PairTokenizerError
from server.inputs.prompts import check_default_prompt_name
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs, ServerArgsError, default_model_path
from server.launch.child_environment import prepare_child_environment
from server.launch.graceful_server import GracefulServer
from server.launch.rank_processes import (
    StartupError,
    scheduler_config,
    start_scheduler_ranks,
    stop_children,
    wait_until_ready,
)
from server.launch.startup_summary import startup_summary
from server.launch.topology import gpu_shortage, tensor_parallel_problem
from server.launch.worker_node import run_worker_node

logger = logging.getLogger("embedserve")


def _stop_on_signal(signum, frame) -> None:
    raise SystemExit(0)


def launch_server(args: ServerArgs) -> int:
    """Run the whole server in the foreground; returns the process exit code."""
    label = "frontend" if args.node_rank == 0 else f"node{args.node_rank}"
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s [{label}] %(levelname)s %(name)s: %(message)s"
    )
    if args.model_path is None:
        args.model_path = default_model_path()
        logger.info("no --model-path given: serving the embedded default all-MiniLM-L6-v2 from %s", args.model_path)
    device = args.resolved_device()
    args.max_prefill_tokens = args.resolved_max_prefill_tokens(
        device
    )  # children and /get_server_info see the value in force
    try:
        model_config = ModelConfig.load(
            args.model_path, args.model_overrides(), args.context_length, args.dtype, device
        )
        check_default_prompt_name(args.default_prompt_name, model_config.st_info)
    except (ModelConfigError, UnsupportedModelError, ServerArgsError, OSError) as error:
        logger.error("cannot serve %s: %s", args.model_path, error)
        return 2
    problem = tensor_parallel_problem(model_config, args.tp_size) or gpu_shortage(args, device)
    if problem is not None:
        logger.error("cannot serve %s with --tp-size %d: %s", args.model_path, args.tp_size, problem)
        return 2
    scheduler = scheduler_config(args, model_config, device)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    logger.info("child processes preload malloc: %s", prepare_child_environment())
    if args.node_rank > 0:
        return run_worker_node(args, scheduler)
    served_model_name = args.served_model_name or args.model_path
    ipc = IpcAddresses.create()
    children: list[BaseProcess] = []
    heartbeat = ReplicaHeartbeats(multiprocessing.get_context("spawn"), args.dp_size)
    try:
        children = _start_children(args, scheduler, served_model_name, ipc, heartbeat)
        tokenizer = TokenizerManager(model_config, args.trust_remote_code, args.allow_auto_truncate)
        multimodal = None
        if model_config.spec.multimodal is not None:
            from server.inputs.multimodal import MultimodalProcessor

            try:
                multimodal = MultimodalProcessor(model_config, args, tokenizer)
            except (ValueError, OSError) as error:
                logger.error("cannot serve %s: %s", args.model_path, error)
                return 2
        pairs = None
        if model_config.task == "score":
            try:
                pairs = PairTokenizer(tokenizer.tokenizer, model_config.context_length)
            except PairTokenizerError as error:
                logger.error("cannot serve %s: %s", args.model_path, error)
                return 2
        engine_info = wait_until_ready(children)
        logger.info(startup_summary(args, model_config, served_model_name, engine_info))
        state = FrontendState(
            args,
            model_config,
            served_model_name,
            tokenizer,
            EngineClient(ipc, args.dp_size),
            engine_info=engine_info,
            heartbeat=heartbeat,
        )
        state.multimodal = multimodal
        state.pairs = pairs
        return _serve_http(state, children)
    except StartupError as error:
        logger.error("startup failed: %s", error)
        return 1
    finally:
        stop_children(children)
        ipc.remove()


def _start_children(
    args: ServerArgs,
    scheduler: SchedulerConfig,
    served_model_name: str,
    ipc: IpcAddresses,
    heartbeats: ReplicaHeartbeats,
) -> list[BaseProcess]:
    """The result process, then this node's scheduler ranks (one per rank of every replica)."""
    ctx = multiprocessing.get_context("spawn")
    result_ready, result_ready_w = ctx.Pipe(duplex=False)
    result = ctx.Process(
        target=run_result_process,
        args=(ipc, served_model_name, scheduler.model.normalize, args.log_level, result_ready_w),
        name="embedserve-result",
    )
    result.start()
    result_ready_w.close()
    result.ready_conn = result_ready  # type: ignore[attr-defined]
    return [result, *start_scheduler_ranks(ctx, args, scheduler, ipc, heartbeats)]


def _serve_http(state: FrontendState, children: list[BaseProcess]) -> int:
    args = state.args
    app = build_app(state)
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop", log_level=args.log_level.lower(), access_log=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = GracefulServer(config, drain=state.health.drain)
    exit_code = 0

    def watch_children() -> None:
        loop = asyncio.get_running_loop()

        def on_death(proc: BaseProcess) -> None:
            nonlocal exit_code
            for p in children:
                loop.remove_reader(p.sentinel)
            proc.join(timeout=1)
            reason = f"{proc.name} died with exit code {proc.exitcode}"
            logger.error("%s; failing in-flight requests and shutting down", reason)
            state.engine.fail_all(reason)
            exit_code = 1
            loop.call_later(args.child_death_exit_delay, setattr, server, "should_exit", True)

        for proc in children:
            # The sentinel becomes readable when the process ends: no polling.
            loop.add_reader(proc.sentinel, on_death, proc)

    state.on_startup.append(watch_children)
    uvloop.run(server.serve())
    if not server.started and exit_code == 0:
        return 1  # e.g. the port was taken
    return exit_code
