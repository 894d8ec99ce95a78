"""The work folder of one `embedserve embed` run: its settings, a Parquet file per finished chunk (written whole or
not at all), and the merge of the chunks, in order, into the final .parquet or .npy output."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RUN_FILE = "run.json"
OUTPUT_FORMATS = (".parquet", ".npy")
_BAD_ROWS_KEY = b"embedserve.bad_rows"
_TOKENS_KEY = b"embedserve.tokens"


class RunError(RuntimeError):
    """The run cannot go on as asked (an unfinished run in the way, other settings on --resume); says what to do."""


@dataclass(frozen=True)
class Totals:
    rows: int  # rows embedded
    bad_rows: list[dict]  # {"row", "id", "problem"} of every row skipped
    tokens: int


def _write_atomically(path: Path, write) -> None:
    """`write(temporary_path)`, then rename into place: a killed run leaves the old file or the new one, never half."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def prepare_folder(output: Path, settings: dict[str, Any], resume: bool) -> Path | None:
    """The run's folder beside `output`: continued with --resume (same settings only), else started anew; None
    when --resume finds the output complete and no folder left."""
    folder = output.with_name(output.name + ".partial")
    if folder.exists():
        if not resume:
            raise RunError(f"{folder} holds an unfinished run: add --resume to continue it, or remove it to start over")
        saved = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        changed = sorted(name for name in settings.keys() | saved.keys() if saved.get(name) != settings.get(name))
        if changed:
            raise RunError(
                f"--resume: {folder} was started with other settings ({', '.join(changed)}); "
                "rerun with the same ones, or remove the folder to start over"
            )
        return folder
    if resume and output.exists():
        return None
    folder.mkdir(parents=True)
    text = json.dumps(settings, indent=2, sort_keys=True)
    _write_atomically(folder / RUN_FILE, lambda path: path.write_text(text, encoding="utf-8"))
    return folder


class ChunkStore:
    def __init__(self, folder: Path, id_type: pa.DataType, dimensions: int):
        self.folder = folder
        self.schema = pa.schema([("id", id_type), ("embedding", pa.list_(pa.float32(), dimensions))])

    def _chunk_path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:08d}.parquet"

    def completed_chunks(self) -> int:
        """How many chunks, from the first, are finished: the run goes on after them."""
        count = 0
        while self._chunk_path(count).exists():
            count += 1
        return count

    def write_chunk(self, index: int, ids: list, vectors: np.ndarray, bad_rows: list[dict], tokens: int) -> None:
        if pa.types.is_string(self.schema.field("id").type):
            ids = [row_id if isinstance(row_id, str) else str(row_id) for row_id in ids]
        metadata = {_BAD_ROWS_KEY: json.dumps(bad_rows).encode(), _TOKENS_KEY: str(tokens).encode()}
        table = pa.table(
            [pa.array(ids, self.schema.field("id").type), embedding_array(vectors)],
            schema=self.schema.with_metadata(metadata),
        )
        _write_atomically(self._chunk_path(index), lambda path: pq.write_table(table, path))

    def totals(self, chunks: int) -> Totals:
        """What the first `chunks` chunks hold, from their footers alone."""
        rows, tokens, bad_rows = 0, 0, []
        for index in range(chunks):
            metadata = pq.read_metadata(self._chunk_path(index))
            rows += metadata.num_rows
            extra = metadata.metadata or {}
            tokens += int(extra.get(_TOKENS_KEY, b"0"))
            bad_rows += json.loads(extra.get(_BAD_ROWS_KEY, b"[]"))
        return Totals(rows, bad_rows, tokens)

    def merge(self, output: Path, chunks: int, file_metadata: dict[str, str]) -> Totals:
        """Write the first `chunks` chunks, in order, as `output`: one chunk in memory at a time."""
        if output.suffix.lower() == ".npy":
            self._merge_npy(output, chunks)
        else:
            schema = self.schema.with_metadata(file_metadata)

            def write(path: Path) -> None:
                with pq.ParquetWriter(path, schema) as writer:
                    for index in range(chunks):
                        writer.write_table(
                            pq.read_table(self._chunk_path(index)).replace_schema_metadata(file_metadata)
                        )

            _write_atomically(output, write)
        totals = self.totals(chunks)
        if totals.bad_rows:
            lines = "".join(json.dumps(row) + "\n" for row in totals.bad_rows)
            _write_atomically(bad_rows_path(output), lambda path: path.write_text(lines, encoding="utf-8"))
        return totals

    def _merge_npy(self, output: Path, chunks: int) -> None:
        rows, dimensions = self.totals(chunks).rows, self.schema.field("embedding").type.list_size

        def write_vectors(path: Path) -> None:
            matrix = np.lib.format.open_memmap(path, mode="w+", dtype="<f4", shape=(rows, dimensions))
            start = 0
            for index in range(chunks):
                column = pq.read_table(self._chunk_path(index), columns=["embedding"]).column("embedding")
                block = column.combine_chunks().flatten().to_numpy().reshape(-1, dimensions)
                matrix[start : start + len(block)] = block
                start += len(block)
            matrix.flush()
            del matrix

        def write_ids(path: Path) -> None:
            with path.open("w", encoding="utf-8") as file:
                for index in range(chunks):
                    ids = pq.read_table(self._chunk_path(index), columns=["id"]).column("id").to_pylist()
                    file.writelines(json.dumps(row_id) + "\n" for row_id in ids)

        _write_atomically(output, write_vectors)
        _write_atomically(ids_path(output), write_ids)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def ids_path(output: Path) -> Path:
    """Beside a .npy output: each row's id, one JSON value a line, in the matrix's order."""
    return output.with_suffix(".ids.jsonl")


def bad_rows_path(output: Path) -> Path:
    return output.with_suffix(".bad_rows.jsonl")
