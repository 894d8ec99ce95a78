"""`Engine`: the server's processes and input path in your own Python process, without HTTP."""

from __future__ import annotations

import atexit
import itertools
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import numpy as np

from embedserve.loop_thread import LoopThread
from processes.response_encoder import decode_base64_vectors
from server.http.embedding_pipeline import EmbedOutcome, embed_items, engine_error_message
from server.http.engine_client import EngineClient
from server.http.errors import APIError
from server.http.protocol import check_dimensions, parse_inputs
from server.http.routes_native import sglang_answer
from server.inputs.prompts import select_prompt
from server.launch.args import ServerArgs
from server.launch.child_environment import prepare_child_environment
from server.launch.engine_processes import EngineProcesses, LaunchError, resolve_model, unwatch_children, watch_children

# Inputs per request sent to the scheduler, and requests kept in flight: enough queued work that the scheduler
# always has its next batch ready, while a caller's huge list is tokenized and held a few chunks at a time.
CHUNK_INPUTS = 256
CHUNKS_IN_FLIGHT = 8
_INPUT_INDEX = re.compile(r"\binput\[(\d+)\]")


class EngineError(RuntimeError):
    """The engine could not start, or failed while embedding (a child process died, a forward pass raised)."""


def _as_python_error(error: APIError) -> Exception:
    """The server's 4xx become ValueError with the same message; anything else is the engine's failure."""
    return ValueError(error.message) if error.status < 500 else EngineError(error.message)


@contextmanager
def _child_environment() -> Iterator[None]:
    """The children's malloc and cache settings, set only while they start: the caller's own environment (and
    any process it starts later) stays as it was."""
    saved = dict(os.environ)
    try:
        prepare_child_environment()
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


class Engine:
    """An embedding model served in-process: `embed` gives a float32 matrix, `encode` answers as SGLang's does.

    Options are the server's (`ServerArgs` fields: dtype, tp_size, max_prefill_tokens, allow_auto_truncate,
    json_model_override_args, default_prompt_name, ...); no model path means the embedded all-MiniLM-L6-v2.
    The model runs in child processes started with `spawn`: a script that creates an Engine needs the usual
    `if __name__ == "__main__":` guard.
    """

    def __init__(self, model_path: str | None = None, **options: Any):
        options.setdefault("log_level", "warning")
        self.args = ServerArgs(model_path=model_path, **options)
        if self.args.node_rank != 0:
            raise ValueError("an Engine runs node 0; start the other nodes with `embedserve serve --node-rank N`")
        self._rids = itertools.count()
        self._loop: LoopThread | None = None
        self._processes: EngineProcesses | None = None
        self._client: EngineClient | None = None
        try:
            self.model_config, scheduler = resolve_model(self.args)
            with _child_environment():
                self._processes = EngineProcesses.start(self.args, self.model_config, scheduler)
            self._loop = LoopThread("embedserve-engine-loop")
            client = EngineClient(self._processes.ipc, self.args.dp_size)
            self._loop.run(client.start())
            self._client = client
            watch = watch_children  # on the loop's thread, where the sentinels are watched
            self._loop.loop.call_soon_threadsafe(watch, self._loop.loop, self._processes.children, client.fail_all)
        except LaunchError as error:
            self.close()
            raise EngineError(str(error)) from error
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    @property
    def embedding_dim(self) -> int:
        return self.model_config.embedding_dim

    def embed(self, inputs: Any, dimensions: int | None = None, prompt_name: str | None = None) -> np.ndarray:
        """(len(inputs), dimensions or the model's size) float32, one row per input in input order.

        Inputs: texts, token-id lists, or (multimodal models) {"text", "image"} items, as the server takes them.
        """
        return self.embed_with_usage(inputs, dimensions, prompt_name)[0]

    def embed_with_usage(
        self, inputs: Any, dimensions: int | None = None, prompt_name: str | None = None
    ) -> tuple[np.ndarray, int]:
        """`embed`'s matrix and the number of tokens the model read for it."""
        items = self._items(inputs)
        dimensions, prompt = self._options(dimensions, prompt_name)
        vectors = np.empty((len(items), dimensions or self.embedding_dim), dtype=np.float32)
        num_tokens = 0
        for start, outcome in self._embed_chunks(items, dimensions, prompt):
            vectors[start : start + len(outcome.tokens.seq_lens)] = decode_base64_vectors(outcome.response.body)
            num_tokens += outcome.tokens.num_tokens
        return vectors, num_tokens

    def encode(self, prompt: Any, image_data: Any = None, dimensions: int | None = None) -> dict | list[dict]:
        """SGLang's `Engine.encode`: {"embedding": [...], "meta_info": {...}} for one prompt, a list for a list."""
        single = isinstance(prompt, str | dict)
        if image_data is not None:
            texts, images = ([prompt], [image_data]) if single else (list(prompt), list(image_data))
            if len(texts) != len(images):
                raise ValueError(f"{len(texts)} prompts but {len(images)} images")
            prompt = [{"text": text, "image": image} for text, image in zip(texts, images, strict=True)]
        items = self._items(prompt)
        dimensions, text_prompt = self._options(dimensions, None)
        outcome = self._wait(self._submit(items, dimensions, text_prompt))
        return sglang_answer(outcome, single)

    def over_context(self, texts: list[str], prompt_name: str | None = None) -> dict[int, int]:
        """{index: token count} of the texts `embed` refuses as longer than the model's context (none when the
        engine truncates them: allow_auto_truncate)."""
        _, processes, _ = self._running()
        _, prompt = self._options(None, prompt_name)
        return processes.tokenizer.over_context(list(texts), prompt)

    def close(self) -> None:
        """Stop the loop thread and every child process this engine started; safe to call twice."""
        atexit.unregister(self.close)
        if self._loop is not None and not self._loop.loop.is_closed():
            self._loop.cancel_tasks()  # requests in flight abort while their sockets are still open
            if self._processes is not None:
                self._loop.loop.call_soon_threadsafe(unwatch_children, self._loop.loop, self._processes.children)
                if self._processes.multimodal is not None:
                    self._loop.run(self._processes.multimodal.fetch_client.aclose())
            if self._client is not None:
                self._loop.run(self._client.stop())
            self._loop.close()
        if self._processes is not None:
            self._processes.stop()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _running(self) -> tuple[LoopThread, EngineProcesses, EngineClient]:
        if self._loop is None or self._processes is None or self._client is None or self._loop.loop.is_closed():
            raise EngineError("this Engine is closed")
        return self._loop, self._processes, self._client

    def _items(self, inputs: Any) -> list:
        _, processes, _ = self._running()
        if not isinstance(inputs, str | dict | list):
            inputs = list(inputs)  # tuples, numpy arrays of strings, pandas columns
        if isinstance(inputs, dict):
            inputs = [inputs]
        if isinstance(inputs, list) and not inputs:
            return []
        try:
            return parse_inputs(inputs, multimodal=processes.multimodal is not None)
        except APIError as error:
            raise _as_python_error(error) from None

    def _options(self, dimensions: int | None, prompt_name: str | None) -> tuple[int | None, str]:
        try:
            checked = check_dimensions(dimensions, self.model_config)
            prompt = select_prompt(prompt_name, self.args.default_prompt_name, self.model_config.st_info)
        except APIError as error:
            raise _as_python_error(error) from None
        return checked, prompt

    def _submit(self, items: list, dimensions: int | None, prompt: str) -> Future[EmbedOutcome]:
        loop, processes, client = self._running()
        rid = f"engine-{next(self._rids)}"
        # base64 carries the exact float32 bits from the result process
        coroutine = embed_items(
            processes.tokenizer, processes.multimodal, client, rid, items, "base64", dimensions, prompt
        )
        return loop.submit(coroutine)

    def _wait(self, future: Future[EmbedOutcome], first_index: int = 0) -> EmbedOutcome:
        try:
            outcome = future.result()
        except APIError as error:
            if first_index:  # the tokenizer names inputs by their index in the chunk: name them as the caller did
                error.message = _INPUT_INDEX.sub(lambda m: f"input[{int(m[1]) + first_index}]", error.message)
            raise _as_python_error(error) from None
        if outcome.response.status != 200:
            status, message = outcome.response.status, engine_error_message(outcome.response.body)
            raise ValueError(message) if status < 500 else EngineError(message)
        return outcome

    def _embed_chunks(self, items: list, dimensions: int | None, prompt: str) -> Iterator[tuple[int, EmbedOutcome]]:
        """(first input's index, outcome) per chunk, in order, with a bounded number of chunks in flight."""
        in_flight: deque[tuple[int, Future[EmbedOutcome]]] = deque()
        try:
            for start in range(0, len(items), CHUNK_INPUTS):
                in_flight.append((start, self._submit(items[start : start + CHUNK_INPUTS], dimensions, prompt)))
                if len(in_flight) == CHUNKS_IN_FLIGHT:
                    first, future = in_flight.popleft()
                    yield first, self._wait(future, first)
            while in_flight:
                first, future = in_flight.popleft()
                yield first, self._wait(future, first)
        finally:
            for _, future in in_flight:
                future.cancel()  # their handlers abort the requests at the scheduler (EngineClient.embed)
