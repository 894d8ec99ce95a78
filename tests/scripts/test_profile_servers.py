"""The profile script reads py-spy's collapsed stacks into self and total shares, and names processes."""

from __future__ import annotations

import os
import sys

import psutil

from tests.support.launch import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

from profile_servers import cpu_seconds, label, summarize_stacks  # noqa: E402


def test_collapsed_stacks_become_self_and_total_shares(tmp_path):
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "main (a.py:1);serve (b.py:2);forward (c.py:3) 6\n"
        "main (a.py:1);serve (b.py:2);recv (d.py:4) 3\n"
        "main (a.py:1) 1\n"
        "not a stack line\n"
    )
    summary = summarize_stacks(raw, top=2)
    assert summary["samples"] == 10
    assert summary["self"] == [("forward c.py:3", 0.6), ("recv d.py:4", 0.3)]
    assert summary["total"][0] == ("main a.py:1", 1.0) and summary["total"][1] == ("serve b.py:2", 0.9)
    assert summarize_stacks(tmp_path / "missing.txt", top=2) == {"samples": 0}


def test_processes_are_labelled_and_timed():
    me = psutil.Process(os.getpid())
    assert label(me).endswith(f"({os.getpid()})")
    assert cpu_seconds([me])[os.getpid()] > 0
