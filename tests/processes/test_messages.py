"""Every IPC struct survives a msgpack round trip; arrays travel as raw bytes and decode as views, not copies."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from processes.messages import (
    AbortRequest,
    BatchOutput,
    BatchStats,
    EmbedRequest,
    EmbedResponse,
    ImageData,
    RawArray,
    RawArrayView,
    RequestOutput,
    SchedulerInput,
)


def _raw(values, dtype) -> RawArray:
    return RawArray.from_numpy(np.asarray(values, dtype=dtype))


def _pixels() -> RawArrayView:
    return RawArrayView.from_numpy(np.arange(24, dtype=np.float32).reshape(2, 3, 4))


def _round_trip(message, message_type=None):
    return msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=message_type or type(message))


def _every_message() -> list:
    full_request = EmbedRequest(
        "rid-1", _raw([101, 7, 102, 5], np.int32), _raw([3, 1], np.int32), encoding_format="base64", dimensions=64,
        prompt_tokens=4, sent_at=12.5, images=[ImageData(1, _pixels(), grid_thw=(1, 2, 2), num_tokens=5)],
    )  # fmt: skip
    stats = [BatchStats(3, 40, 0.25, 2), BatchStats(1, 9, 0.125, 0)]
    full_output = RequestOutput(
        "rid-1", _raw([[0.5, -1.0]], np.float32), encoding_format="base64", dimensions=1, prompt_tokens=4,
        queue_time=0.5, inference_time=0.75,
    )  # fmt: skip
    return [
        _raw([[1.5, 2.5], [3.5, 4.5]], np.float32),
        ImageData(0, _pixels()),
        EmbedRequest("rid-0", _raw([1, 2], np.int32), _raw([2], np.int32)),  # every default left out
        full_request,
        AbortRequest("rid-1"),
        RequestOutput("rid-2", error="forward pass failed (request rid-2)", status=500),
        full_output,
        stats[0],
        BatchOutput([full_output, RequestOutput("rid-3", error="x", status=400)], stats),
        BatchOutput([]),
        EmbedResponse("rid-1", 200, b'{"object":"list"}', 0.5, 0.75, stats),
        EmbedResponse("rid-2", 503, b"{}"),
    ]


@pytest.mark.parametrize("message", _every_message(), ids=lambda m: type(m).__name__)
def test_every_struct_round_trips(message):
    decoded = _round_trip(message)
    assert decoded == message and type(decoded) is type(message)


def test_scheduler_input_decodes_to_the_sent_kind():
    decoder = msgspec.msgpack.Decoder(SchedulerInput)
    request = EmbedRequest("a", _raw([1], np.int32), _raw([1], np.int32))
    assert type(decoder.decode(msgspec.msgpack.encode(request))) is EmbedRequest
    assert decoder.decode(msgspec.msgpack.encode(AbortRequest("a"))) == AbortRequest("a")


def test_a_message_of_another_type_is_refused():
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(BatchStats(1, 2, 0.5, 0)), type=BatchOutput)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.float16, np.uint8])
def test_raw_array_keeps_dtype_shape_and_values(dtype):
    array = (np.arange(30).reshape(5, 6) % 7).astype(dtype)
    decoded = _round_trip(RawArray.from_numpy(array)).to_numpy()
    assert decoded.dtype == array.dtype and decoded.shape == (5, 6)
    np.testing.assert_array_equal(decoded, array)


def test_non_contiguous_arrays_are_sent_in_logical_order():
    array = np.arange(12, dtype=np.float32).reshape(3, 4).T  # a transposed view
    np.testing.assert_array_equal(_round_trip(RawArray.from_numpy(array)).to_numpy(), array)
    np.testing.assert_array_equal(_round_trip(RawArrayView.from_numpy(array)).to_numpy(), array)


def test_raw_array_to_numpy_is_a_read_only_view_of_its_bytes():
    raw = _raw([1.0, 2.0, 3.0], np.float32)
    array = raw.to_numpy()
    assert np.shares_memory(array, np.frombuffer(raw.data, np.uint8))
    assert not array.flags.writeable


def test_raw_array_view_wraps_the_array_without_copying():
    pixels = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    view = RawArrayView.from_numpy(pixels)
    assert np.shares_memory(np.frombuffer(view.data, np.uint8), pixels)


def test_raw_array_view_has_raw_arrays_wire_format():
    pixels = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    encoded = msgspec.msgpack.encode(RawArrayView.from_numpy(pixels))
    assert encoded == msgspec.msgpack.encode(RawArray.from_numpy(pixels))
    np.testing.assert_array_equal(msgspec.msgpack.decode(encoded, type=RawArray).to_numpy(), pixels)


def test_raw_array_view_decodes_as_a_view_into_the_received_frame():
    frame = msgspec.msgpack.encode(ImageData(0, _pixels()))
    image = msgspec.msgpack.decode(frame, type=ImageData)
    pixels = image.pixel_values.to_numpy()
    assert np.shares_memory(pixels, np.frombuffer(frame, np.uint8))  # no copy on the way out
    assert not pixels.flags.writeable
    np.testing.assert_array_equal(pixels, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
