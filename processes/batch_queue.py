"""The scheduler's request bookkeeping: first-come-first-served token-budget batches over waiting inputs."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engine.inputs import ImageInput
from processes.messages import EmbedRequest, ImageData, RawArray, RequestOutput


@dataclass
class _RequestState:
    request: EmbedRequest
    sequences: list[np.ndarray]  # views into the request's flat token array
    vectors: np.ndarray | None = None  # (num_inputs, dim) filled as batches finish
    num_done: int = 0
    arrived: float = field(default_factory=time.monotonic)
    first_forward: float | None = None  # when the first forward holding one of its inputs started


@dataclass(frozen=True)
class BatchItem:
    rid: str
    index: int  # which input of its request
    token_ids: np.ndarray
    image: ImageInput | None = None  # multimodal models: the input's preprocessed image
    token_type_ids: np.ndarray | None = None  # a query-document pair's segment of each token

    @property
    def num_tokens(self) -> int:
        """The item's cost in the token budget: its ids plus any image positions not among them (CLIP)."""
        return len(self.token_ids) + (self.image.num_tokens if self.image is not None else 0)


def _image_input(image: ImageData) -> ImageInput:
    # The pixels stay a view into the received ZMQ frame: no copy on the way to the model.
    return ImageInput(image.pixel_values.to_numpy(), image.grid_thw, image.num_tokens)


class BatchQueue:
    """Holds waiting inputs; hands out batches under a token budget; gathers vectors back per request."""

    def __init__(self, max_prefill_tokens: int, max_running_requests: int):
        self.max_prefill_tokens = max_prefill_tokens
        self.max_running_requests = max_running_requests
        self._waiting: deque[BatchItem] = deque()
        self._requests: dict[str, _RequestState] = {}
        self.num_dropped_inputs = 0  # skipped because their request was aborted before they ran
        self.num_discarded_inputs = 0  # ran, but their request was aborted meanwhile

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def num_requests(self) -> int:
        return len(self._requests)

    def add(self, request: EmbedRequest) -> None:
        token_ids = request.token_ids.to_numpy()
        lens = request.seq_lens.to_numpy()
        bounds = np.concatenate(([0], np.cumsum(lens)))
        sequences = [token_ids[bounds[i] : bounds[i + 1]] for i in range(len(lens))]
        # sent_at is the frontend's time.monotonic(): one clock for every process of a machine, so the
        # queue time includes any wait in the socket while a forward ran.
        arrived = min(request.sent_at, time.monotonic()) if request.sent_at else time.monotonic()
        self._requests[request.rid] = _RequestState(request, sequences, arrived=arrived)
        images = {image.index: _image_input(image) for image in request.images}
        types = request.token_type_ids.to_numpy() if request.token_type_ids is not None else None
        self._waiting.extend(
            BatchItem(request.rid, i, seq, images.get(i), None if types is None else types[bounds[i] : bounds[i + 1]])
            for i, seq in enumerate(sequences)
        )

    def abort(self, rid: str) -> None:
        """Forget a request: its queued inputs are skipped and any running ones are discarded."""
        self._requests.pop(rid, None)

    def next_batch(self) -> list[BatchItem]:
        """Take waiting inputs in arrival order until the next would exceed the token or sequence budget.

        A single input longer than the budget runs alone: sequences are never split across forwards.
        """
        batch: list[BatchItem] = []
        num_tokens = 0
        while self._waiting and len(batch) < self.max_running_requests:
            item = self._waiting[0]
            if item.rid not in self._requests:
                self._waiting.popleft()  # aborted
                self.num_dropped_inputs += 1
                continue
            if batch and num_tokens + item.num_tokens > self.max_prefill_tokens:
                break
            batch.append(self._waiting.popleft())
            num_tokens += item.num_tokens
        return batch

    def complete(
        self, batch: list[BatchItem], vectors: np.ndarray, started: float | None = None, ended: float | None = None
    ) -> list[RequestOutput]:
        """Store each input's vector; return the requests that are now whole.

        `started` and `ended` (time.monotonic) bound the forward that produced `vectors`; they give
        each request its queue and inference times.
        """
        ended = time.monotonic() if ended is None else ended
        started = ended if started is None else started
        finished = []
        for item, vector in zip(batch, vectors, strict=True):
            state = self._requests.get(item.rid)
            if state is None:
                self.num_discarded_inputs += 1
                continue
            if state.first_forward is None:
                state.first_forward = started
            if state.vectors is None:
                state.vectors = np.empty((len(state.sequences), vectors.shape[1]), dtype=np.float32)
            state.vectors[item.index] = vector
            state.num_done += 1
            if state.num_done == len(state.sequences):
                del self._requests[item.rid]
                req = state.request
                finished.append(
                    RequestOutput(
                        rid=req.rid,
                        embeddings=RawArray.from_numpy(state.vectors),
                        encoding_format=req.encoding_format,
                        dimensions=req.dimensions,
                        prompt_tokens=req.prompt_tokens,
                        queue_time=max(state.first_forward - state.arrived, 0.0),
                        inference_time=max(ended - state.first_forward, 0.0),
                        task=req.task,
                    )
                )
        return finished

    @staticmethod
    def token_types(batch: list[BatchItem]) -> list[np.ndarray] | None:
        """Each input's token types when the batch holds pairs (an input without them is all segment 0), else None."""
        if all(item.token_type_ids is None for item in batch):
            return None
        return [
            item.token_type_ids if item.token_type_ids is not None else np.zeros(len(item.token_ids), np.uint8)
            for item in batch
        ]

    def fail(self, batch: list[BatchItem], error: str, status: int = 500) -> list[RequestOutput]:
        """Fail every request with an input in `batch`; their other queued inputs are dropped."""
        failed = []
        for rid in dict.fromkeys(item.rid for item in batch):
            if self._requests.pop(rid, None) is not None:
                failed.append(RequestOutput(rid=rid, error=f"{error} (request {rid})", status=status))
        return failed
