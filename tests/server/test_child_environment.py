"""The launcher preloads a non-fragmenting malloc and bounds oneDNN's caches for its children; a user's choice wins."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.launch.child_environment import ALLOCATOR_VARIABLE, find_malloc_library, prepare_child_environment
from tests.support.launch import REPO_ROOT, RunningServer


def test_auto_finds_a_malloc_library_and_preloads_it():
    library = find_malloc_library("auto")
    # pyproject.toml installs mimalloc into the environment, so every install has at least that one
    assert library is not None and Path(library).is_file()
    environ = {"LD_PRELOAD": "/opt/other.so"}
    assert prepare_child_environment(environ) == library
    assert environ["LD_PRELOAD"] == f"{library} /opt/other.so"
    assert (environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], environ["LRU_CACHE_CAPACITY"]) == ("1024", "32")
    assert environ["GOMP_SPINCOUNT"] == "100000"


def test_jemalloc_keeps_its_freed_pages_unless_the_user_configured_it(tmp_path):
    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    environ = {ALLOCATOR_VARIABLE: str(library)}
    prepare_child_environment(environ)
    assert environ["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    environ = {ALLOCATOR_VARIABLE: str(library), "MALLOC_CONF": "narenas:2"}
    prepare_child_environment(environ)
    assert environ["MALLOC_CONF"] == "narenas:2"
    environ = {ALLOCATOR_VARIABLE: "glibc"}
    prepare_child_environment(environ)
    assert "MALLOC_CONF" not in environ


def test_without_a_system_library_the_environments_mimalloc_runs():
    library = find_malloc_library("auto", system_dirs=())  # a machine where nothing was installed as root
    assert library is not None and "mimalloc" in Path(library).name
    probe = "from processes.allocator import allocator_in_use; print(allocator_in_use())"
    env = dict(os.environ, LD_PRELOAD=library, PYTHONPATH=str(REPO_ROOT))
    ran = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "mimalloc" and "preloaded" not in ran.stderr


def test_the_users_settings_win(tmp_path, caplog):
    environ = {"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4", "LRU_CACHE_CAPACITY": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert prepare_child_environment(environ).startswith("/usr/lib/libtcmalloc.so.4")
    assert environ["LD_PRELOAD"] == "/usr/lib/libtcmalloc.so.4" and environ["LRU_CACHE_CAPACITY"] == "1"
    assert "GOMP_SPINCOUNT" not in environ

    environ = {ALLOCATOR_VARIABLE: "glibc"}
    assert prepare_child_environment(environ) == "glibc" and "LD_PRELOAD" not in environ

    library = tmp_path / "libmymalloc.so"
    library.write_bytes(b"")
    environ = {ALLOCATOR_VARIABLE: str(library)}
    assert prepare_child_environment(environ) == str(library) and environ["LD_PRELOAD"] == str(library)

    environ = {ALLOCATOR_VARIABLE: str(tmp_path / "missing.so")}
    with caplog.at_level(logging.WARNING, logger="embedserve"):
        assert prepare_child_environment(environ) == "glibc"
    assert "LD_PRELOAD" not in environ and "no such file" in caplog.text


MALLOC_NAMES = ("jemalloc", "tcmalloc", "mimalloc")


def _mapped_libraries(process) -> str:
    return " ".join(m.path for m in process.memory_maps())


@pytest.mark.parametrize("allocator", ["auto", "glibc"])
def test_the_scheduler_runs_with_the_chosen_malloc(allocator):
    server = RunningServer(["--is-embedding"], env={ALLOCATOR_VARIABLE: allocator}, startup_timeout=300)
    try:
        scheduler_maps = _mapped_libraries(server.child("scheduler"))
        expected = find_malloc_library(allocator)
        running = [name for name in MALLOC_NAMES if name in scheduler_maps]
        if expected is None:
            assert running == []
        else:
            assert Path(expected).resolve().name in scheduler_maps and len(running) == 1
        assert f"malloc: {running[0] if running else 'glibc'}" in server.log()  # the scheduler logs what it runs
    finally:
        server.stop()
