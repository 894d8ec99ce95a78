"""Starts the scheduler ranks and the result process, waits until the model is warm, serves HTTP, and stops them all.

With --node-rank above 0 it runs only this node's ranks (server/launch/worker_node.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from multiprocessing.process import BaseProcess

import uvicorn
import uvloop

from server.http.app import FrontendState, build_app
from server.http.engine_client import EngineClient
from server.launch.args import ServerArgs
from server.launch.child_environment import prepare_child_environment
from server.launch.engine_processes import EngineProcesses, LaunchError, resolve_model
from server.launch.engine_processes import watch_children as watch_children_of
from server.launch.graceful_server import GracefulServer
from server.launch.startup_summary import startup_summary
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
    try:
        model_config, scheduler = resolve_model(args)
    except LaunchError as error:
        logger.error("%s", error)
        return error.exit_code
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    logger.info("child processes preload malloc: %s", prepare_child_environment())
    if args.node_rank > 0:
        return run_worker_node(args, scheduler)
    try:
        engine = EngineProcesses.start(args, model_config, scheduler)
    except LaunchError as error:
        logger.error("%s", error)
        return error.exit_code
    try:
        logger.info(startup_summary(args, model_config, engine.served_model_name, engine.engine_info))
        state = FrontendState(
            args,
            model_config,
            engine.served_model_name,
            engine.tokenizer,
            EngineClient(engine.ipc, args.dp_size),
            engine_info=engine.engine_info,
            heartbeat=engine.heartbeat,
        )
        state.multimodal = engine.multimodal
        state.pairs = engine.pairs
        return _serve_http(state, engine.children)
    finally:
        engine.stop()


def _serve_http(state: FrontendState, children: list[BaseProcess]) -> int:
    args = state.args
    app = build_app(state)
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop", log_level=args.log_level.lower(), access_log=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = GracefulServer(config, drain=state.health.drain)
    exit_code = 0

    def watch_children() -> None:
        def on_death(reason: str) -> None:
            nonlocal exit_code
            logger.error("%s; failing in-flight requests and shutting down", reason)
            state.engine.fail_all(reason)
            exit_code = 1
            asyncio.get_running_loop().call_later(args.child_death_exit_delay, setattr, server, "should_exit", True)

        watch_children_of(asyncio.get_running_loop(), children, on_death)

    state.on_startup.append(watch_children)
    uvloop.run(server.serve())
    if not server.started and exit_code == 0:
        return 1  # e.g. the port was taken
    return exit_code
