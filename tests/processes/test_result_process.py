"""The result process, started as a real child: BatchOutputs in, ready HTTP bodies out, stats on one response each."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import zmq

from processes.channels import PullChannel, PushChannel
from processes.ipc import IpcAddresses
from processes.messages import BatchOutput, BatchStats, EmbedResponse, RawArray, RequestOutput
from processes.response_encoder import encode_embeddings_body, encode_error_body
from processes.result_process import run_result_process
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def result_process():
    """(channel to the result process, channel from it), with the process running and ready."""
    ipc = IpcAddresses.create()
    context = zmq.Context()
    responses = PullChannel(context, ipc.frontend, EmbedResponse, bind=True)
    spawn = multiprocessing.get_context("spawn")
    ready_reader, ready_writer = spawn.Pipe(duplex=False)
    process = spawn.Process(target=run_result_process, args=(ipc, "served-name", True, "warning", ready_writer))
    process.start()
    try:
        assert ready_reader.poll(60), "the result process never reported"
        assert ready_reader.recv() == ("ready", {})
        yield PushChannel[BatchOutput](context, ipc.result), responses
    finally:
        process.kill()  # it ignores SIGTERM: the launcher alone stops it (processes/lifecycle.py)
        process.join(timeout=10)
        context.destroy(linger=0)
        ipc.remove()


def _receive(channel: PullChannel, count: int) -> list[EmbedResponse]:
    received: list[EmbedResponse] = []
    wait_until(lambda: received.extend(channel.recv_all(block=False)) or len(received) >= count, 20)
    return received


def test_each_output_becomes_its_ready_body_and_stats_ride_on_the_first(result_process):
    to_results, responses = result_process
    vectors = RawArray.from_numpy(np.array([[3, 4, 12], [1, 0, 0]], np.float32))
    ok = RequestOutput("ok", vectors, encoding_format="base64", dimensions=2, prompt_tokens=9, queue_time=0.5)
    failed = RequestOutput("failed", error="forward pass failed (request failed)", status=500)
    stats = [BatchStats(2, 9, 0.25, 0), BatchStats(1, 4, 0.125, 3)]
    to_results.send(BatchOutput([ok, failed], stats))
    first, second = _receive(responses, 2)
    assert first == EmbedResponse("ok", 200, encode_embeddings_body(ok, "served-name", True), 0.5, 0.0, stats)
    assert second == EmbedResponse("failed", 500, encode_error_body(failed.error, 500))  # no stats twice
