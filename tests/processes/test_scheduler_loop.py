"""The scheduler loop (`serve_forever`) against a fake runner, driven over real channels from a thread.

The fake runner returns a deterministic vector per input and can hold a forward at a gate, so a test
queues requests behind it and knows exactly what each batch can hold. The channels use ZMQ's inproc
transport: a sent message is in the scheduler's socket when `send` returns, so nothing depends on timing.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import zmq

from engine.faults import FatalEngineError
from processes.batch_queue import BatchQueue
from processes.channels import PullChannel, PushChannel
from processes.heartbeat import EngineHeartbeat
from processes.messages import AbortRequest, BatchOutput, EmbedRequest, RawArray, SchedulerInput
from processes.scheduler_process import serve_forever
from tests.support.wait import wait_until

FAIL_TOKEN, FATAL_TOKEN, STOP_TOKEN = 90_001, 90_002, 90_003


class _StopLoop(BaseException):
    """Raised by the fake runner to end serve_forever at teardown (it catches only Exception)."""


class FakeRunner:
    """ModelRunner's `embed`: an input's vector is (first id, length, sum of ids); every batch is recorded."""

    def __init__(self):
        self.batches: list[list[list[int]]] = []
        self.token_types: list[list[list[int]] | None] = []  # each batch's, as the runner received them
        self.gate = threading.Event()
        self.gate.set()
        self.during_forward: Callable[[list[list[int]]], None] | None = None  # runs inside each forward

    def embed(self, sequences: list[np.ndarray], images=None, token_types=None) -> np.ndarray:
        ids = [seq.tolist() for seq in sequences]
        self.batches.append(ids)
        self.token_types.append(None if token_types is None else [types.tolist() for types in token_types])
        flat = set(itertools.chain.from_iterable(ids))
        if STOP_TOKEN in flat:
            raise _StopLoop
        if self.during_forward is not None:
            self.during_forward(ids)
        assert self.gate.wait(30), "the test never opened the gate"
        if FAIL_TOKEN in flat:
            raise RuntimeError(f"no forward for token {FAIL_TOKEN}")
        if FATAL_TOKEN in flat:
            raise FatalEngineError("the device is gone")
        return np.array([vector_of(seq) for seq in ids], dtype=np.float32)


def vector_of(ids: list[int]) -> list[float]:
    return [ids[0], len(ids), sum(ids)]


def request(rid: str, *inputs: list[int]) -> EmbedRequest:
    flat = np.array(list(itertools.chain.from_iterable(inputs)), dtype=np.int32)
    lens = np.array([len(ids) for ids in inputs], dtype=np.int32)
    return EmbedRequest(rid, RawArray.from_numpy(flat), RawArray.from_numpy(lens), prompt_tokens=len(flat))


def ids(start: int, length: int) -> list[int]:
    return list(range(start, start + length))


class SchedulerLoop:
    """serve_forever in a thread, with the channels the frontend and the result process would hold."""

    def __init__(self, max_prefill_tokens: int, max_running_requests: int, idle_seconds: float = 60.0):
        self.runner = FakeRunner()
        self.idle_calls: list[int] = []  # the number of forwards run when each idle release happened
        self.idle_seconds = idle_seconds
        self.queue = BatchQueue(max_prefill_tokens, max_running_requests)
        self.heartbeat = EngineHeartbeat(multiprocessing.get_context("spawn"))
        self.context = zmq.Context()
        inbox = PullChannel(self.context, "inproc://scheduler", SchedulerInput, bind=True)
        self.results = PullChannel(self.context, "inproc://result", BatchOutput, bind=True)
        outbox = PushChannel[BatchOutput](self.context, "inproc://result")
        self.frontend = PushChannel[SchedulerInput](self.context, "inproc://scheduler")
        self.error: BaseException | None = None
        # The thread alone uses inbox and outbox from here on (a ZMQ socket belongs to one thread at a time).
        self.thread = threading.Thread(target=self._run, args=(inbox, outbox), daemon=True)
        self.thread.start()

    def _run(self, inbox: PullChannel, outbox: PushChannel) -> None:
        try:
            serve_forever(
                self.runner,
                self.queue,
                inbox,
                outbox,
                self.heartbeat,
                on_idle=lambda: self.idle_calls.append(len(self.runner.batches)),
                idle_seconds=self.idle_seconds,
            )
        except _StopLoop:
            pass
        except BaseException as error:
            self.error = error

    def send(self, *messages) -> None:
        for message in messages:
            self.frontend.send(message)

    def hold_forward(self) -> None:
        """Start a forward that waits at the gate; requests sent meanwhile queue up behind it."""
        self.runner.gate.clear()
        num_batches = len(self.runner.batches)
        self.send(request("blocker", [7]))
        wait_until(lambda: len(self.runner.batches) > num_batches, 10, message="the blocking forward")

    def release(self) -> None:
        self.runner.gate.set()

    def receive(self, num_requests: int) -> list[BatchOutput]:
        """BatchOutputs until they hold `num_requests` requests, or fail after 10 s."""
        messages: list[BatchOutput] = []

        def enough() -> bool:
            messages.extend(self.results.recv_all(block=False))
            return sum(len(m.outputs) for m in messages) >= num_requests

        wait_until(enough, 10, message=f"{num_requests} finished requests")
        return messages

    def close(self) -> None:
        self.runner.gate.set()
        if self.thread.is_alive():
            self.send(request("stop", [STOP_TOKEN]))
        self.thread.join(timeout=10)
        self.context.destroy(linger=0)
        assert not self.thread.is_alive(), "serve_forever did not stop"


@pytest.fixture
def make_loop():
    loops: list[SchedulerLoop] = []

    def make(max_prefill_tokens: int = 100, max_running_requests: int = 8, idle_seconds: float = 60.0) -> SchedulerLoop:
        loops.append(SchedulerLoop(max_prefill_tokens, max_running_requests, idle_seconds))
        return loops[-1]

    yield make
    for loop in loops:
        loop.close()


def outputs_by_rid(messages: list[BatchOutput]) -> dict:
    return {output.rid: output for message in messages for output in message.outputs}


def test_an_idle_request_runs_at_once_and_returns_its_vectors(make_loop):
    loop = make_loop()
    loop.send(request("a", ids(10, 3), ids(20, 2)))
    [message] = loop.receive(1)
    [output] = message.outputs
    assert (output.rid, output.status, output.error, output.prompt_tokens) == ("a", 200, None, 5)
    np.testing.assert_array_equal(output.embeddings.to_numpy(), [vector_of(ids(10, 3)), vector_of(ids(20, 2))])


def test_memory_is_released_once_per_idle_spell_after_work(make_loop):
    loop = make_loop(idle_seconds=0.05)
    loop.send(request("a", ids(10, 3)))
    loop.receive(1)
    wait_until(lambda: loop.idle_calls == [1], 10, message="the release after the first forward")
    loop.send(request("b", ids(20, 2)))
    loop.receive(1)
    wait_until(lambda: loop.idle_calls == [1, 2], 10, message="the release after the second forward")
    # An idle loop that has not worked since its last release does not release again: six idle periods pass.
    time.sleep(0.3)
    assert loop.idle_calls == [1, 2]


def test_pairs_batch_with_their_token_types_and_come_back_as_scores(make_loop):
    loop = make_loop()
    loop.hold_forward()
    pairs = request("pairs", ids(10, 3), ids(20, 2))
    pairs.task = "score"
    pairs.token_type_ids = RawArray.from_numpy(np.array([0, 0, 1, 0, 1], dtype=np.uint8))
    loop.send(pairs, request("text", ids(30, 2)))
    loop.release()
    finished = outputs_by_rid(loop.receive(2))
    # one forward holds both requests' inputs: the text without token types is all segment 0
    assert loop.runner.batches[-1] == [ids(10, 3), ids(20, 2), ids(30, 2)]
    assert loop.runner.token_types[-1] == [[0, 0, 1], [0, 1], [0, 0]]
    assert (finished["pairs"].task, finished["text"].task) == ("score", "embed")


def test_queued_inputs_are_batched_in_order_under_the_token_and_sequence_budgets(make_loop):
    loop = make_loop(max_prefill_tokens=10, max_running_requests=3)
    loop.hold_forward()
    a, b, c, d = [ids(100, 4), ids(110, 4)], [ids(200, 1), ids(210, 1)], [ids(300, 3)], [ids(400, 12)]
    loop.send(request("a", *a), request("b", *b), request("c", *c), request("d", *d))
    loop.release()
    finished = outputs_by_rid(loop.receive(5))
    assert loop.runner.batches == [
        [[7]],
        [a[0], a[1], b[0]],  # 9 tokens; a fourth input would break the 3-input limit
        [b[1], c[0]],  # 4 tokens; d's 12 would pass the 10-token budget
        [d[0]],  # longer than the budget: it runs alone, never split
    ]
    for rid, inputs in (("a", a), ("b", b), ("c", c), ("d", d)):
        np.testing.assert_array_equal(finished[rid].embeddings.to_numpy(), [vector_of(x) for x in inputs])


def test_an_aborted_request_is_dropped_before_it_runs(make_loop):
    loop = make_loop()
    loop.hold_forward()
    loop.send(request("gone", ids(100, 2), ids(110, 2), ids(120, 2)), AbortRequest("gone"), request("kept", [5]))
    loop.release()
    finished = outputs_by_rid(loop.receive(2))
    assert set(finished) == {"blocker", "kept"}  # the aborted request never answers
    assert loop.runner.batches == [[[7]], [[5]]]  # and none of its inputs reached the model
    assert loop.heartbeat.get("inputs_dropped") == 3


def test_aborting_a_request_mid_run_drops_its_remaining_inputs(make_loop):
    loop = make_loop(max_prefill_tokens=100, max_running_requests=1)
    loop.runner.gate.clear()
    loop.send(request("gone", ids(100, 2), ids(110, 2)))
    wait_until(lambda: loop.runner.batches, 10, message="the first input's forward")
    loop.send(AbortRequest("gone"))  # arrives while its first input is in the forward
    loop.release()
    loop.send(request("next", [5]))
    assert list(outputs_by_rid(loop.receive(1))) == ["next"]
    assert loop.runner.batches == [[ids(100, 2)], [[5]]]
    assert loop.heartbeat.get("inputs_dropped") == 1 and loop.heartbeat.get("inputs_discarded") == 1
    assert loop.queue.num_requests == 0


def test_vectors_of_a_request_aborted_during_its_forward_are_discarded(make_loop):
    loop = make_loop()
    gone, neighbour = [ids(100, 2), ids(110, 2)], [ids(200, 3)]
    senders: list[PushChannel] = []  # a socket of the scheduler's thread, kept open until the loop closes

    def client_leaves(batch: list[list[int]]) -> None:
        if gone[0] in batch:  # the frontend's abort, in the inbox before the forward ends
            senders.append(PushChannel[SchedulerInput](loop.context, "inproc://scheduler"))
            senders[-1].send(AbortRequest("gone"))

    loop.runner.during_forward = client_leaves
    loop.hold_forward()
    loop.send(request("gone", *gone), request("neighbour", *neighbour))
    loop.release()
    finished = outputs_by_rid(loop.receive(2))
    assert loop.runner.batches == [[[7]], [*gone, *neighbour]]  # both requests shared the forward
    assert set(finished) == {"blocker", "neighbour"}  # the result process never sees the aborted one
    np.testing.assert_array_equal(finished["neighbour"].embeddings.to_numpy(), [vector_of(neighbour[0])])
    assert loop.heartbeat.get("inputs_discarded") == 2 and loop.heartbeat.get("inputs_dropped") == 0
    assert loop.queue.num_requests == 0


def test_a_failing_forward_fails_only_the_requests_in_that_batch(make_loop):
    loop = make_loop(max_prefill_tokens=100, max_running_requests=2)
    loop.hold_forward()
    bad = [[FAIL_TOKEN, 1], ids(500, 2)]
    loop.send(request("neighbour", ids(100, 2)), request("bad", *bad), request("later", ids(300, 3)))
    loop.release()
    finished = outputs_by_rid(loop.receive(4))
    for rid in ("neighbour", "bad"):  # they shared the failed forward
        assert finished[rid].status == 500 and finished[rid].embeddings is None
        assert finished[rid].error == f"forward pass failed: RuntimeError: no forward for token {FAIL_TOKEN} (request {rid})"  # fmt: skip
    assert finished["later"].status == 200
    np.testing.assert_array_equal(finished["later"].embeddings.to_numpy(), [vector_of(ids(300, 3))])
    assert loop.runner.batches == [[[7]], [ids(100, 2), bad[0]], [ids(300, 3)]]  # "bad"'s other input never ran
    assert loop.thread.is_alive()


def test_a_fatal_forward_error_stops_the_loop(make_loop):
    loop = make_loop()
    loop.send(request("doomed", [FATAL_TOKEN]))
    loop.thread.join(timeout=10)
    assert not loop.thread.is_alive() and isinstance(loop.error, FatalEngineError)


def test_forward_stats_ride_on_the_next_batch_output(make_loop):
    loop = make_loop(max_prefill_tokens=100, max_running_requests=1)
    loop.hold_forward()
    loop.send(request("two", ids(100, 3), ids(110, 4)), request("one", ids(200, 5)))
    loop.release()
    messages = loop.receive(3)
    assert [[o.rid for o in m.outputs] for m in messages] == [["blocker"], ["two"], ["one"]]
    reported = [[(s.num_inputs, s.num_tokens, s.waiting_inputs) for s in m.batches] for m in messages]
    # "two"'s first forward finished nothing: its stats wait for the BatchOutput of its second one.
    assert reported == [[(1, 1, 0)], [(1, 3, 2), (1, 4, 1)], [(1, 5, 0)]]
    assert all(s.forward_time >= 0 for m in messages for s in m.batches)
    assert loop.heartbeat.get("batches_done") == 4 and loop.heartbeat.get("inputs_done") == 4
