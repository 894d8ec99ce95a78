"""Input files read as a stream of numbered rows (.jsonl, .csv, .parquet, .txt), each a text and its id or a problem."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

FORMATS = (".jsonl", ".csv", ".parquet", ".txt")
_READ_ROWS = 4096  # rows pyarrow decodes at a time: memory stays bounded whatever the file's size


class SourceError(ValueError):
    """The input cannot be read at all (unknown format, no such column); the message says why."""


@dataclass(frozen=True)
class Row:
    number: int  # 1-based: the line of a .jsonl/.txt file, the data row of a .csv/.parquet file
    id: Any
    text: str | None  # None when the row is bad
    problem: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    path: Path
    text_field: str
    id_field: str
    id_field_given: bool  # without --id-field, a source with no `id` column is numbered by rows instead

    @property
    def kind(self) -> str:
        return self.path.suffix.lower()

    @property
    def unit(self) -> str:
        return "line" if self.kind in (".jsonl", ".txt") else "row"


def id_type(spec: SourceSpec) -> pa.DataType:
    """The output's id column: row numbers (int64) when the source has no id field, else the field's values."""
    if not _reads_ids(spec):
        return pa.int64()
    if spec.kind == ".parquet":
        column = _parquet_schema(spec).field(spec.id_field).type
        if pa.types.is_integer(column):
            return pa.int64()
    return pa.string()


def estimate_rows(spec: SourceSpec) -> int | None:
    """The rows a progress bar expects: exact for Parquet, newlines for the others; None for a pipe."""
    if spec.kind == ".parquet":
        return _parquet_file(spec).metadata.num_rows
    if not stat.S_ISREG(os.stat(spec.path).st_mode):
        return None
    lines, last = 0, b"\n"
    with spec.path.open("rb") as file:
        while block := file.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without its newline
    return max(lines - 1, 0) if spec.kind == ".csv" else lines


def read_rows(spec: SourceSpec, skip: int = 0) -> Iterator[Row]:
    """Every row after the first `skip`, in order, read as a stream."""
    check_source(spec)
    if spec.kind == ".txt":
        return _text_rows(spec, skip)
    if spec.kind == ".jsonl":
        return _jsonl_rows(spec, skip)
    return _table_rows(spec, skip)


def _text_rows(spec: SourceSpec, skip: int) -> Iterator[Row]:
    with spec.path.open(encoding="utf-8", newline="\n") as file:
        for number, line in enumerate(file, 1):
            if number <= skip:
                continue
            text = line.rstrip("\n").rstrip("\r")
            yield _checked(number, number, text, spec)


def _reads_ids(spec: SourceSpec) -> bool:
    if spec.id_field_given:
        return True
    if spec.kind == ".txt":
        return False
    if spec.kind == ".jsonl":
        return _first_jsonl_object(spec).get(spec.id_field) is not None
    return spec.id_field in _table_columns(spec)


def _first_jsonl_object(spec: SourceSpec) -> dict:
    if not stat.S_ISREG(os.stat(spec.path).st_mode):
        return {}  # a pipe cannot be read twice: ids are then read from the rows only with --id-field
    with spec.path.open("rb") as file:
        for line in file:
            if line.strip():
                try:
                    value = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    return {}
                return value if isinstance(value, dict) else {}
    return {}


def _jsonl_rows(spec: SourceSpec, skip: int) -> Iterator[Row]:
    reads_ids = _reads_ids(spec)
    decoder = msgspec.json.Decoder()
    with spec.path.open("rb") as file:
        for number, line in enumerate(file, 1):
            if number <= skip:
                continue
            try:
                value = decoder.decode(line)
            except msgspec.DecodeError:
                problem = "not valid JSON" if line.strip() else "empty line"
                yield Row(number, None if reads_ids else number, None, problem)
                continue
            if not isinstance(value, dict):
                yield Row(number, number, None, f"a JSON {type(value).__name__}, not an object")
                continue
            row_id: Any = number
            if reads_ids:
                row_id = value.get(spec.id_field)
                if row_id is None:
                    yield Row(number, None, None, f"missing field {spec.id_field!r}")
                    continue
                row_id = row_id if isinstance(row_id, str) else msgspec.json.encode(row_id).decode()
            text = value.get(spec.text_field)
            if not isinstance(text, str):
                problem = (
                    f"missing field {spec.text_field!r}" if text is None else f"{spec.text_field!r} is not a string"
                )
                yield Row(number, row_id, None, problem)
                continue
            yield _checked(number, row_id, text, spec)


def _checked(number: int, row_id: Any, text: str, spec: SourceSpec) -> Row:
    if not text.strip():
        return Row(number, row_id, None, f"empty {spec.text_field!r}" if spec.kind != ".txt" else "empty line")
    return Row(number, row_id, text)


def _parquet_file(spec: SourceSpec):
    import pyarrow.parquet as pq

    return pq.ParquetFile(spec.path)


def _parquet_schema(spec: SourceSpec) -> pa.Schema:
    return _parquet_file(spec).schema_arrow


def _table_columns(spec: SourceSpec) -> list[str]:
    if spec.kind == ".parquet":
        return list(_parquet_schema(spec).names)
    import pyarrow.csv as pacsv

    with pacsv.open_csv(spec.path, parse_options=pacsv.ParseOptions(newlines_in_values=True)) as reader:
        return list(reader.schema.names)


def _table_batches(spec: SourceSpec, columns: list[str], skip: int) -> Iterator[pa.RecordBatch]:
    """Record batches of `columns`; whole Parquet row groups before row `skip` are not read at all."""
    if spec.kind == ".parquet":
        parquet = _parquet_file(spec)
        groups, first_row = [], 0
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if first_row + rows > skip:
                groups.append(index)
            first_row += rows
        if not groups:
            return
        yield from parquet.iter_batches(batch_size=_READ_ROWS, row_groups=groups, columns=columns)
        return
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(include_columns=columns, column_types={name: pa.string() for name in columns})
    parse = pacsv.ParseOptions(newlines_in_values=True)  # a quoted text may span lines
    read = pacsv.ReadOptions(block_size=1 << 20)
    with pacsv.open_csv(spec.path, read_options=read, parse_options=parse, convert_options=convert) as reader:
        yield from reader


def _skipped_rows(spec: SourceSpec, skip: int) -> int:
    """Rows `_table_batches` leaves out before its first batch: the Parquet row groups wholly before `skip`."""
    if spec.kind != ".parquet":
        return 0
    metadata, first_row = _parquet_file(spec).metadata, 0
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        if first_row + rows > skip:
            break
        first_row += rows
    return first_row


def check_source(spec: SourceSpec) -> None:
    """Raise SourceError now, before any model loads, when the input cannot be read as asked."""
    if spec.kind not in FORMATS:
        raise SourceError(f"{spec.path}: input must end in one of {', '.join(FORMATS)}")
    if spec.kind in (".txt", ".jsonl"):
        return
    available = _table_columns(spec)
    for name in [spec.text_field, spec.id_field] if _reads_ids(spec) else [spec.text_field]:
        if name not in available:
            raise SourceError(f"{spec.path} has no column {name!r}; its columns: {', '.join(available)}")
    text_type = _parquet_schema(spec).field(spec.text_field).type if spec.kind == ".parquet" else pa.string()
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise SourceError(f"{spec.path}: column {spec.text_field!r} holds {text_type}, not text")


def _table_rows(spec: SourceSpec, skip: int) -> Iterator[Row]:
    reads_ids = _reads_ids(spec)
    columns = [spec.text_field, spec.id_field] if reads_ids else [spec.text_field]
    number = _skipped_rows(spec, skip)
    for batch in _table_batches(spec, columns, skip):
        texts = batch.column(0).to_pylist()
        ids = batch.column(1).to_pylist() if reads_ids else None
        for offset, text in enumerate(texts):
            number += 1
            if number <= skip:
                continue
            row_id = ids[offset] if ids is not None else number
            if row_id is None or row_id == "":
                yield Row(number, None, None, f"missing {spec.id_field!r}")
            elif text is None:
                yield Row(number, row_id, None, f"missing {spec.text_field!r}")
            else:
                yield _checked(number, row_id, text, spec)
