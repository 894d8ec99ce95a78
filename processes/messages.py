"""Every message that crosses a process boundary, in one module: keep it that way.

Arrays travel as raw bytes plus dtype and shape (never pickled, never lists of numbers).
"""

from __future__ import annotations

import msgspec
import numpy as np


class RawArray(msgspec.Struct, array_like=True, gc=False):
    data: bytes
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> RawArray:
        array = np.ascontiguousarray(array)
        return cls(array.tobytes(), array.dtype.str, tuple(array.shape))

    def to_numpy(self) -> np.ndarray:
        """A read-only view over the received bytes; no copy."""
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype)).reshape(self.shape)


class RawArrayView(msgspec.Struct, array_like=True, gc=False):
    """RawArray's wire format for large arrays (pixels), copied at most once on the way.

    Built over a numpy array without copying it (the encoder reads the array's memory), and decoded
    as a view into the received frame, so the scheduler gets the pixels without another copy.
    """

    data: memoryview
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> RawArrayView:
        array = np.ascontiguousarray(array)
        return cls(array.data.cast("B"), array.dtype.str, tuple(array.shape))

    def to_numpy(self) -> np.ndarray:
        """A read-only view over the received bytes; no copy."""
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype)).reshape(self.shape)


# frontend -> scheduler


class ImageData(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """One input's preprocessed image: what the vision tower consumes."""

    index: int  # which input of its request
    pixel_values: RawArrayView  # Qwen2-VL: (num_patches, patch_dim) float32; CLIP: (3, height, width) float32
    grid_thw: tuple[int, int, int] | None = None  # Qwen2-VL: patches along time, height, width
    num_tokens: int = (
        0  # what the image costs in the token budget (CLIP: patches + CLS; 0 when its tokens are in the ids)
    )


class EmbedRequest(msgspec.Struct, tag=True, array_like=True, omit_defaults=True, gc=False):
    """One HTTP request: all its inputs' token ids concatenated, with each input's length."""

    rid: str
    token_ids: RawArray  # (total_tokens,) int32
    seq_lens: RawArray  # (num_inputs,) int32
    encoding_format: str = "float"
    dimensions: int | None = None
    prompt_tokens: int = 0
    sent_at: float = 0.0  # the frontend's time.monotonic() when it sent the request
    images: list[ImageData] = []  # multimodal models only; empty for text
    task: str = "embed"  # "score": each input is a query-document pair of a cross-encoder, answered with its logits
    token_type_ids: RawArray | None = None  # (total_tokens,) uint8 segment of each token, for pairs


class AbortRequest(msgspec.Struct, tag=True, array_like=True, gc=False):
    rid: str


SchedulerInput = EmbedRequest | AbortRequest


# scheduler -> result process


class RequestOutput(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """A finished request: its pooled vectors (unnormalized, full size) or an error."""

    rid: str
    embeddings: RawArray | None = None  # (num_inputs, embedding_dim) float32
    encoding_format: str = "float"
    dimensions: int | None = None
    prompt_tokens: int = 0
    error: str | None = None
    status: int = 200
    queue_time: float = 0.0  # seconds from reaching the scheduler to its first forward
    inference_time: float = 0.0  # seconds from its first forward's start to its last forward's end
    task: str = "embed"  # "score": `embeddings` holds each pair's logits, sent on as they are


class BatchStats(msgspec.Struct, array_like=True, gc=False):
    """One forward pass, as the frontend's metrics see it."""

    num_inputs: int
    num_tokens: int
    forward_time: float  # seconds
    waiting_inputs: int  # inputs left in the scheduler's queue once this batch was formed


class BatchOutput(msgspec.Struct, array_like=True, gc=False):
    outputs: list[RequestOutput]
    batches: list[BatchStats] = []  # the forwards run since the previous BatchOutput


# result process -> frontend


class EmbedResponse(msgspec.Struct, array_like=True, gc=False):
    """The HTTP response ready to send: status and the serialized JSON body."""

    rid: str
    status: int
    body: bytes
    queue_time: float = 0.0
    inference_time: float = 0.0
    batches: list[BatchStats] = []  # carried by one response per BatchOutput, for the metrics
