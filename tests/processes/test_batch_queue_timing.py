"""Queue and inference times the scheduler reports per request, for the timing headers and metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from processes.batch_queue import BatchQueue
from processes.messages import EmbedRequest, RawArray


def _request(rid: str, lens: list[int], sent_at: float = 0.0) -> EmbedRequest:
    ids = np.arange(sum(lens), dtype=np.int32)
    lens_array = RawArray.from_numpy(np.asarray(lens, dtype=np.int32))
    return EmbedRequest(rid, RawArray.from_numpy(ids), lens_array, prompt_tokens=sum(lens), sent_at=sent_at)


def test_times_span_from_sending_to_the_last_forward():
    queue = BatchQueue(max_prefill_tokens=3, max_running_requests=8)
    sent = time.monotonic() - 1.0  # sent a second ago, while the scheduler was busy
    queue.add(_request("r", [3, 3], sent_at=sent))
    assert queue.complete(queue.next_batch(), np.ones((1, 2), np.float32), sent + 1.5, sent + 2.0) == []
    (output,) = queue.complete(queue.next_batch(), np.ones((1, 2), np.float32), sent + 2.0, sent + 3.0)
    assert output.queue_time == pytest.approx(1.5)  # sending to the first forward's start
    assert output.inference_time == pytest.approx(1.5)  # first forward's start to the last forward's end


def test_without_a_send_time_the_clock_starts_on_arrival():
    queue = BatchQueue(max_prefill_tokens=16, max_running_requests=8)
    queue.add(_request("r", [2]))
    started = time.monotonic()
    (output,) = queue.complete(queue.next_batch(), np.ones((1, 2), np.float32), started, started + 0.25)
    assert 0 <= output.queue_time < 0.25 and output.inference_time == pytest.approx(0.25)
