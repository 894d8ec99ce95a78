"""The result process: normalizes, truncates and serializes finished requests into ready HTTP bodies (scores: raw)."""

from __future__ import annotations

import logging
from multiprocessing.connection import Connection

import zmq

from processes.channels import PullChannel, PushChannel
from processes.ipc import IpcAddresses
from processes.lifecycle import init_child_process, report_failure, report_ready
from processes.messages import BatchOutput, EmbedResponse
from processes.response_encoder import encode_embeddings_body, encode_error_body, encode_scores_body

logger = logging.getLogger(__name__)


def run_result_process(
    ipc: IpcAddresses, served_model_name: str, normalize: bool, log_level: str, ready: Connection
) -> None:
    init_child_process("result", log_level)
    try:
        context = zmq.Context()
        inbox = PullChannel(context, ipc.result, BatchOutput, bind=True)
        outbox = PushChannel[EmbedResponse](context, ipc.frontend)
    except Exception as error:
        report_failure(ready, error)
        raise SystemExit(1) from error
    report_ready(ready)
    while True:
        message = inbox.recv()
        batches = message.batches  # reported once, on the first response of the message
        for output in message.outputs:
            if output.error is not None:
                body = encode_error_body(output.error, output.status)
            elif output.task == "score":
                body = encode_scores_body(output)
            else:
                body = encode_embeddings_body(output, served_model_name, normalize)
            outbox.send(
                EmbedResponse(output.rid, output.status, body, output.queue_time, output.inference_time, batches)
            )
            batches = []
