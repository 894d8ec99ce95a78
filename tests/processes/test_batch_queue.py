"""Token-budget batching: order, budgets, long inputs, aborts and failures."""

from __future__ import annotations

import msgspec
import numpy as np

from processes.batch_queue import BatchQueue
from processes.messages import EmbedRequest, ImageData, RawArray, RawArrayView


def _request(rid: str, lens: list[int]) -> EmbedRequest:
    ids = np.arange(sum(lens), dtype=np.int32)
    return EmbedRequest(
        rid, RawArray.from_numpy(ids), RawArray.from_numpy(np.asarray(lens, dtype=np.int32)), prompt_tokens=sum(lens)
    )


def test_batches_respect_token_and_sequence_budgets_in_arrival_order():
    queue = BatchQueue(max_prefill_tokens=10, max_running_requests=3)
    queue.add(_request("a", [4, 4]))
    queue.add(_request("b", [3, 1, 1]))
    first = queue.next_batch()
    assert [(i.rid, i.index) for i in first] == [("a", 0), ("a", 1)]  # 4+4+3 would exceed 10
    second = queue.next_batch()
    assert [(i.rid, i.index) for i in second] == [("b", 0), ("b", 1), ("b", 2)]


def test_input_longer_than_budget_runs_alone():
    queue = BatchQueue(max_prefill_tokens=5, max_running_requests=8)
    queue.add(_request("long", [9, 2]))
    assert [len(i.token_ids) for i in queue.next_batch()] == [9]
    assert [len(i.token_ids) for i in queue.next_batch()] == [2]


def test_request_finishes_only_when_all_inputs_are_done_across_batches():
    queue = BatchQueue(max_prefill_tokens=4, max_running_requests=8)
    queue.add(_request("r", [3, 3]))
    batch = queue.next_batch()
    assert queue.complete(batch, np.ones((1, 2), np.float32)) == []
    batch = queue.next_batch()
    [output] = queue.complete(batch, np.full((1, 2), 2, np.float32))
    np.testing.assert_array_equal(output.embeddings.to_numpy(), [[1, 1], [2, 2]])
    assert output.prompt_tokens == 6 and queue.num_requests == 0


def test_aborted_request_is_skipped_and_its_results_dropped():
    queue = BatchQueue(max_prefill_tokens=100, max_running_requests=8)
    queue.add(_request("gone", [2, 3]))
    queue.add(_request("kept", [2]))
    queue.abort("gone")
    batch = queue.next_batch()
    assert [i.rid for i in batch] == ["kept"]
    [output] = queue.complete(batch, np.ones((1, 2), np.float32))
    assert output.rid == "kept" and queue.num_requests == 0
    assert (queue.num_dropped_inputs, queue.num_discarded_inputs) == (2, 0)


def test_results_of_a_request_aborted_while_it_runs_are_discarded():
    queue = BatchQueue(max_prefill_tokens=100, max_running_requests=8)
    queue.add(_request("gone", [2, 3]))
    queue.add(_request("kept", [2]))
    batch = queue.next_batch()
    queue.abort("gone")  # while its inputs are in the forward
    [output] = queue.complete(batch, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert output.rid == "kept"
    np.testing.assert_array_equal(output.embeddings.to_numpy(), [[4, 5]])  # its own row, not the discarded ones
    assert (queue.num_dropped_inputs, queue.num_discarded_inputs) == (0, 2) and queue.num_requests == 0


def test_failure_names_each_request_and_drops_its_other_inputs():
    queue = BatchQueue(max_prefill_tokens=3, max_running_requests=8)
    queue.add(_request("r", [2, 2]))
    [failed] = queue.fail(queue.next_batch(), "boom")
    assert failed.status == 500 and "request r" in failed.error
    assert queue.next_batch() == []


def test_images_reach_the_batch_as_views_of_the_received_frame_and_count_in_the_budget():
    pixels = np.random.default_rng(0).random((3, 4, 4), dtype=np.float32)
    request = _request("clip", [0, 2])
    request.images = [ImageData(0, RawArrayView.from_numpy(pixels), None, num_tokens=17)]
    frame = memoryview(bytearray(msgspec.msgpack.encode(request)))  # stands in for the ZMQ frame's buffer
    queue = BatchQueue(max_prefill_tokens=18, max_running_requests=8)
    queue.add(msgspec.msgpack.decode(frame, type=EmbedRequest))
    first, second = queue.next_batch(), queue.next_batch()  # 17 + 2 tokens exceed the budget of 18
    [image] = [item.image for item in first]
    np.testing.assert_array_equal(image.pixel_values, pixels)
    assert np.shares_memory(image.pixel_values, np.frombuffer(frame, dtype=np.uint8))
    assert image.num_tokens == 17 and [item.image for item in second] == [None]
