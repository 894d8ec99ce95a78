"""One chunk of input rows through the engine: bad rows reported (then skipped, or fatal), the rest embedded in order."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from embedserve.bulk.sources import Row, SourceSpec

if TYPE_CHECKING:
    from embedserve.engine import Engine


class BadRowsFound(RuntimeError):
    """A bad row under --on-bad-row fail; the message names it."""


@dataclass(frozen=True)
class ChunkResult:
    ids: list
    vectors: np.ndarray  # (len(ids), dimensions) float32
    bad_rows: list[dict]  # {"line" or "row": number, "id", "problem"}, in input order
    tokens: int


class ChunkEmbedder:
    def __init__(self, engine: Engine, spec: SourceSpec, dimensions: int | None, prompt_name: str | None, fail: bool):
        self.engine = engine
        self.spec = spec
        self.dimensions = dimensions
        self.prompt_name = prompt_name
        self.fail = fail

    @staticmethod
    def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
        while chunk := list(itertools.islice(rows, size)):
            yield chunk

    def embed(self, chunk: list[Row], report: Callable[[str], None]) -> ChunkResult:
        """Embed the chunk's good rows; `report(line)` is told of each bad one as it is found."""
        bad = [row for row in chunk if row.problem is not None]
        self._report(bad, report)
        good = [row for row in chunk if row.problem is None]
        texts = cast(list[str], [row.text for row in good])  # a good row has its text
        try:
            vectors, tokens = self.engine.embed_with_usage(texts, self.dimensions, self.prompt_name)
        except ValueError:
            # Only an input longer than the model's context can fail here: find which (rarely needed, so the
            # texts are not tokenized twice on the common path), report them, and embed the others.
            too_long = self.engine.over_context(texts, self.prompt_name)
            if not too_long:
                raise
            context = self.engine.model_config.context_length
            long_rows = [
                dataclasses.replace(good[index], text=None, problem=f"{count} tokens, more than the model's context length of {context}; add --allow-auto-truncate to truncate it")
                for index, count in too_long.items()
            ]  # fmt: skip
            self._report(long_rows, report)
            good = [row for index, row in enumerate(good) if index not in too_long]
            vectors, tokens = self.engine.embed_with_usage(
                [row.text for row in good], self.dimensions, self.prompt_name
            )
            bad = sorted(bad + long_rows, key=lambda row: row.number)
        unit = self.spec.unit
        bad_rows = [{unit: row.number, "id": row.id, "problem": row.problem} for row in bad]
        return ChunkResult([row.id for row in good], vectors, bad_rows, tokens)

    def _report(self, rows: list[Row], report: Callable[[str], None]) -> None:
        for row in rows:
            where = f"{self.spec.unit} {row.number}" + (f" (id {row.id})" if row.id is not None else "")
            if self.fail:
                raise BadRowsFound(f"{where}: {row.problem}")
            report(f"{where}: {row.problem}; skipped")
