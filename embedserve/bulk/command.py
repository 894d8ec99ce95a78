"""`embedserve embed`: a file of texts in, a Parquet or .npy file of vectors out, chunk by chunk and resumable."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from embedserve.bulk.chunk_store import (
    OUTPUT_FORMATS,
    ChunkStore,
    RunError,
    Totals,
    bad_rows_path,
    prepare_folder,
)
from embedserve.bulk.embed_rows import BadRowsFound, ChunkEmbedder
from embedserve.bulk.sources import (
    FORMATS,
    SourceError,
    SourceSpec,
    check_source,
    estimate_rows,
    id_type,
    read_rows,
)
from server.launch.args import ServerArgs, ServerArgsError
from server.launch.cli import add_server_flags, server_args_from_flags

if TYPE_CHECKING:
    from embedserve.engine import Engine

logger = logging.getLogger("embedserve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedserve embed",
        description="Embed every text of a .jsonl, .csv, .parquet or .txt file into a .parquet or .npy file.",
    )
    parser.add_argument("--input", type=Path, required=True, help=f"the texts: {', '.join(FORMATS)} (.txt: one a line)")
    parser.add_argument("--output", type=Path, required=True, help=f"the vectors: {' or '.join(OUTPUT_FORMATS)}")
    parser.add_argument("--text-field", default="text", help="the field or column holding the text (default: text)")
    parser.add_argument(
        "--id-field", default=None, help="the field or column holding each row's id (default: id when the input has it, else the row number)"
    )  # fmt: skip
    parser.add_argument("--dimensions", type=int, default=None, help="Matryoshka size to truncate to (default: full)")
    parser.add_argument("--prompt-name", default=None, help="sentence-transformers prompt prepended to every text")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last finished chunk"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=4096, help="rows per chunk: the unit kept in memory and saved"
    )
    parser.add_argument(
        "--on-bad-row", choices=("skip", "fail"), default="skip",
        help="a row without text, or too long without --allow-auto-truncate: report and skip it, or report and stop",
    )  # fmt: skip
    add_server_flags(parser)  # the engine's options, as the server takes them
    return parser


def run_embed_command(argv: list[str], engine: Engine | None = None) -> int:
    """The exit code: 0 done, 1 stopped (a bad row with --on-bad-row fail, the engine failed), 2 bad arguments.

    `engine`: an Engine already running (a notebook's, a test's), used instead of starting one from the flags.
    """
    try:
        options = build_parser().parse_args(argv)
        server_fields = {f.name for f in dataclasses.fields(ServerArgs)}
        flags = {name: value for name, value in vars(options).items() if name in server_fields}
        # the progress bar, not the children's start-up logs, unless a flag or the --config file says otherwise
        server_args = server_args_from_flags(flags, defaults={"log_level": "warning"})
    except ServerArgsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=server_args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    spec = SourceSpec(options.input, options.text_field, options.id_field or "id", options.id_field is not None)
    output: Path = options.output
    try:
        problem = _argument_problem(options, spec)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        folder = prepare_folder(output, _settings(options, server_args, spec), options.resume)
        if folder is None:
            print(f"{output} is already complete: nothing to resume")
            return 0
        check_source(spec)  # now, before the model loads
        if engine is not None:
            return _run(engine, spec, options, folder)
        from embedserve.engine import Engine, EngineError

        try:
            with Engine(**_engine_options(server_args)) as started:
                return _run(started, spec, options, folder)
        except EngineError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    except (SourceError, RunError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1 if isinstance(error, RunError) else 2


def _argument_problem(options: argparse.Namespace, spec: SourceSpec) -> str | None:
    if spec.kind not in FORMATS:
        return f"--input must end in one of {', '.join(FORMATS)}"
    if options.output.suffix.lower() not in OUTPUT_FORMATS:
        return f"--output must end in one of {', '.join(OUTPUT_FORMATS)}"
    if not spec.path.exists():
        return f"--input {spec.path}: no such file"
    if options.chunk_size < 1:
        return "--chunk-size must be at least 1"
    return None


def _settings(options: argparse.Namespace, server_args: ServerArgs, spec: SourceSpec) -> dict:
    """What a resumed run must share with the run it continues: every chunk must come out the same."""
    return {
        "input": str(spec.path.resolve()),
        "text_field": spec.text_field,
        "id_field": options.id_field,
        "dimensions": options.dimensions,
        "prompt_name": options.prompt_name,
        "chunk_size": options.chunk_size,
        "model_path": server_args.model_path,
        "json_model_override_args": server_args.json_model_override_args,
        "context_length": server_args.context_length,
        "allow_auto_truncate": server_args.allow_auto_truncate,
        "default_prompt_name": server_args.default_prompt_name,
        "dtype": server_args.dtype,
    }


def _engine_options(server_args: ServerArgs) -> dict:
    options = dataclasses.asdict(server_args)
    options.pop("model_path")
    return {"model_path": server_args.model_path, **options}


def _run(engine: Engine, spec: SourceSpec, options: argparse.Namespace, folder: Path) -> int:
    from tqdm import tqdm

    dimensions = options.dimensions or engine.embedding_dim
    store = ChunkStore(folder, id_type(spec), dimensions)
    chunk_size, output = options.chunk_size, options.output
    done = store.completed_chunks()
    before = store.totals(done)
    embedder = ChunkEmbedder(engine, spec, options.dimensions, options.prompt_name, options.on_bad_row == "fail")
    total = estimate_rows(spec)
    started = time.perf_counter()
    tokens = 0
    with tqdm(total=total, initial=done * chunk_size, unit="rows", dynamic_ncols=True, file=sys.stderr) as bar:

        def say(line: str) -> None:  # above the bar, on its stream
            bar.write(line, file=sys.stderr)

        if done:
            say(f"resuming after {done} finished chunks ({done * chunk_size} rows) in {folder}")
        index = done
        try:
            for chunk in embedder.chunks(read_rows(spec, skip=done * chunk_size), chunk_size):
                result = embedder.embed(chunk, say)
                store.write_chunk(index, result.ids, result.vectors, result.bad_rows, result.tokens)
                index += 1
                tokens += result.tokens
                bar.update(len(chunk))
                bar.set_postfix_str(f"{tokens / (time.perf_counter() - started):,.0f} tokens/s", refresh=False)
        except BadRowsFound as error:
            say(f"error: {error}; the {index} chunks before it are saved: fix the row, then rerun with --resume")
            return 1
        except KeyboardInterrupt:
            say(f"interrupted: {index} chunks are saved in {folder}; rerun with --resume to continue")
            return 130
    totals = store.merge(output, index, _file_metadata(engine, dimensions))
    store.remove()
    _print_summary(totals, before, tokens, time.perf_counter() - started, output, done)
    return 0


def _file_metadata(engine: Engine, dimensions: int) -> dict[str, str]:
    config = engine.model_config
    return {
        "model": engine.args.served_model_name or str(engine.args.model_path),
        "dtype": config.dtype,
        "pooling": config.pooling,
        "dimensions": str(dimensions),
        "normalized": str(config.normalize).lower(),
    }


def _print_summary(totals: Totals, before: Totals, tokens: int, seconds: float, output: Path, resumed: int) -> None:
    rate = f"{totals.rows - before.rows:,} rows in {seconds:.1f} s, {tokens / max(seconds, 1e-9):,.0f} tokens/s"
    lines = [f"embedded {totals.rows:,} rows ({totals.tokens:,} tokens) into {output}", f"this run: {rate}"]
    if resumed:
        lines.append(f"resumed after {resumed} chunks ({before.rows:,} rows) of an earlier run")
    if totals.bad_rows:
        lines.append(f"{len(totals.bad_rows):,} bad rows skipped, listed in {bad_rows_path(output)}")
    print("\n".join(lines))
