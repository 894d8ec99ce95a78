"""Ray Data beyond one machine: `Embedder`, a callable class for `Dataset.map_batches`, one Engine per actor."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedserve.engine import Engine


class Embedder:
    """Reads `text_column` of each batch and adds `embedding_column`: one float32 row per text, in order.

    ```python
    dataset.map_batches(Embedder, fn_constructor_kwargs={"model_path": None}, concurrency=4, batch_size=1024)
    ```
    Each actor starts its own Engine (no model path: the embedded default; the other keyword arguments are the
    engine's options); with `num_gpus=` in `map_batches`, Ray gives each actor its GPUs and the Engine uses them.
    """

    def __init__(
        self,
        model_path: str | None = None,
        text_column: str = "text",
        embedding_column: str = "embedding",
        dimensions: int | None = None,
        prompt_name: str | None = None,
        **engine_options: Any,
    ):
        self.text_column = text_column
        self.embedding_column = embedding_column
        self.dimensions = dimensions
        self.prompt_name = prompt_name
        self.engine = Engine(model_path, **engine_options)

    def __call__(self, batch: Any) -> Any:
        """A batch in Ray's default format (a dict of numpy arrays) or as a pandas DataFrame, with the column added."""
        texts = batch[self.text_column]
        texts = texts.tolist() if hasattr(texts, "tolist") else list(texts)
        vectors = self.engine.embed(texts, self.dimensions, self.prompt_name)
        if isinstance(batch, dict):
            batch[self.embedding_column] = vectors
        else:  # a DataFrame holds one array per row
            batch[self.embedding_column] = list(np.asarray(vectors))
        return batch

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
