"""`embedserve embed`: every input format gives the rows, ids and vectors sentence-transformers gives; bad rows are
reported by line or row; a run killed with SIGKILL and rerun with --resume ends as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedserve.bulk.command import run_embed_command
from embedserve.cli import main as cli_main
from tests.support.compare import assert_close_vectors
from tests.support.launch import REPO_ROOT
from tests.support.texts import varied_texts
from tests.support.wait import wait_until

TEXTS = [" ".join(text.split()) for text in varied_texts(37, long_words=100)]  # one line each, for .txt
IDS = [f"doc-{i}" for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def reference(minilm, st_model_factory) -> np.ndarray:
    return st_model_factory(minilm).encode(TEXTS, convert_to_numpy=True)


def _write_input(folder: Path, kind: str) -> Path:
    path = folder / f"corpus{kind}"
    if kind == ".jsonl":
        path.write_text(
            "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(IDS, TEXTS, strict=True)), encoding="utf-8"
        )
    elif kind == ".csv":
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["text", "id"])
            writer.writerows(zip(TEXTS, IDS, strict=True))
    elif kind == ".parquet":
        pq.write_table(pa.table({"id": IDS, "text": TEXTS}), path, row_group_size=10)
    else:
        path.write_text("".join(text + "\n" for text in TEXTS), encoding="utf-8")
    return path


def _read_parquet(path: Path) -> tuple[list, np.ndarray, dict]:
    table = pq.read_table(path)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return table.column("id").to_pylist(), vectors, metadata


@pytest.mark.parametrize("kind", [".jsonl", ".csv", ".parquet", ".txt"])
def test_each_input_format_gives_the_reference_rows(default_engine, reference, tmp_path, kind):
    source = _write_input(tmp_path, kind)
    output = tmp_path / "vectors.parquet"
    argv = ["--input", str(source), "--output", str(output), "--chunk-size", "16"]
    assert run_embed_command(argv, engine=default_engine) == 0
    ids, vectors, metadata = _read_parquet(output)
    # a .txt has no id field: its rows are numbered by line
    assert ids == (list(range(1, len(TEXTS) + 1)) if kind == ".txt" else IDS)
    assert vectors.dtype == np.float32
    assert_close_vectors(vectors, reference)
    assert metadata["dtype"] == "float32" and metadata["pooling"] == "mean" and metadata["dimensions"] == "384"
    assert metadata["model"] == default_engine.args.model_path and metadata["normalized"] == "true"
    assert not (tmp_path / "vectors.parquet.partial").exists()


def test_npy_output_with_its_ids_beside_it(default_engine, reference, tmp_path):
    output = tmp_path / "vectors.npy"
    argv = ["--input", str(_write_input(tmp_path, ".jsonl")), "--output", str(output)]
    assert run_embed_command(argv, engine=default_engine) == 0
    assert_close_vectors(np.load(output), reference)
    lines = (tmp_path / "vectors.ids.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == IDS


def test_bad_rows_are_reported_by_line_and_skipped_or_fatal(default_engine, tmp_path, capsys):
    rows = [json.dumps({"id": "a", "text": "fine"}), json.dumps({"id": "b", "text": "  "}), json.dumps({"id": "c"}),
            json.dumps({"id": "d", "text": "word " * 400}), "", json.dumps({"id": "e", "text": "also fine"})]  # fmt: skip
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    output = tmp_path / "out.parquet"
    assert run_embed_command(["--input", str(source), "--output", str(output)], engine=default_engine) == 0
    assert _read_parquet(output)[0] == ["a", "e"]
    reported = [json.loads(line) for line in (tmp_path / "out.bad_rows.jsonl").read_text().splitlines()]
    assert [(row["line"], row["id"]) for row in reported] == [(2, "b"), (3, "c"), (4, "d"), (5, None)]
    assert "more than the model's context length of 256" in reported[2]["problem"]
    err = capsys.readouterr().err
    assert "line 3 (id c): missing field 'text'; skipped" in err and "line 5: empty line; skipped" in err

    argv = ["--input", str(source), "--output", str(tmp_path / "strict.parquet"), "--on-bad-row", "fail"]
    assert run_embed_command(argv, engine=default_engine) == 1
    assert "error: line 2 (id b): empty 'text'" in capsys.readouterr().err
    assert not (tmp_path / "strict.parquet").exists()


def test_the_console_command_hands_all_but_embed_to_the_servers_command(capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["model-path"])  # neither a subcommand nor a flag: the usage of both
    assert stop.value.code == 2 and "embedserve embed --input FILE" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        cli_main(["embed", "--input", "corpus.xlsx", "--output", "out.parquet"])
    assert stop.value.code == 2 and "--input must end in one of" in capsys.readouterr().err


def _open_writer(fifo: Path, proc: subprocess.Popen) -> int | None:
    """The pipe's write end once the command has opened it for reading (after its model loaded)."""
    if proc.poll() is not None:
        raise RuntimeError(f"embedserve embed exited with {proc.returncode} before reading its input")
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None


def test_a_killed_run_resumes_with_each_id_once_and_equal_vectors(default_engine, reference, tmp_path):
    # The input is a named pipe, so the run is killed at a known point: three chunks written, waiting for more.
    fifo, output = tmp_path / "corpus.jsonl", tmp_path / "vectors.parquet"
    os.mkfifo(fifo)
    argv = ["--input", str(fifo), "--output", str(output), "--id-field", "id", "--chunk-size", "8"]
    log = (tmp_path / "run.log").open("wb")
    command = [sys.executable, "-m", "embedserve", "embed", *argv]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        writer = wait_until(lambda: _open_writer(fifo, proc), 300, 0.1, "the command to open its input")
        lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(IDS, TEXTS, strict=True)]
        os.set_blocking(writer, True)
        os.write(writer, "".join(lines[:28]).encode())  # three chunks of 8, and half of a fourth
        partial = tmp_path / "vectors.parquet.partial"
        wait_until(lambda: (partial / "chunk-00000002.parquet").exists(), 120, 0.05, "three finished chunks")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert {child.name() for child in children} >= {"embedserve-sche", "embedserve-resu"}
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    # the engine's processes follow their parent
    wait_until(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 30)
    assert not output.exists()
    assert sorted(p.name for p in partial.glob("chunk-*.parquet")) == [f"chunk-0000000{i}.parquet" for i in range(3)]

    fifo.unlink()
    fifo.write_text("".join(lines), encoding="utf-8")  # the same input, now whole
    assert run_embed_command([*argv, "--resume"], engine=default_engine) == 0
    ids, resumed, _ = _read_parquet(output)
    assert ids == IDS  # each id once, in input order
    assert_close_vectors(resumed, reference)
    uninterrupted = tmp_path / "uninterrupted.parquet"
    argv_whole = ["--input", str(fifo), "--output", str(uninterrupted), "--id-field", "id", "--chunk-size", "8"]
    assert run_embed_command(argv_whole, engine=default_engine) == 0
    whole_ids, whole, _ = _read_parquet(uninterrupted)
    assert whole_ids == ids
    np.testing.assert_allclose(resumed, whole, atol=1e-6)
    assert not partial.exists()
    assert run_embed_command([*argv, "--resume"], engine=default_engine) == 0  # complete: nothing left to do


def test_help_and_a_bad_flag_answer_without_loading_torch():
    probe = """
import sys
from embedserve.cli import main
for argv in (["embed", "--help"], ["embed", "--input", "a.txt", "--output", "b.parquet", "--port", "0"]):
    try:
        main(argv)
    except SystemExit as stop:
        print("exit", stop.code)
print("heavy:", sorted(name for name in ("torch", "transformers", "fastapi") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert "--text-field" in result.stdout and "--port 0 is not a valid port" in result.stderr
    assert result.stdout.strip().splitlines()[-3:] == ["exit 0", "exit 2", "heavy: []"]
