"""Weight loading shows a progress bar at info level and yields the same tensors with or without it."""

from __future__ import annotations

import logging

import torch

from engine.weights import iterate_weights


def test_progress_bar_counts_every_tensor(minilm, capsys, caplog):
    caplog.set_level(logging.INFO, logger="engine.weights")
    with_bar = dict(iterate_weights(minilm, progress=True))
    bar = capsys.readouterr().err
    assert "Loading weights" in bar and f"{len(with_bar)}/{len(with_bar)}" in bar
    plain = dict(iterate_weights(minilm))
    assert capsys.readouterr().err == ""
    assert plain.keys() == with_bar.keys() and all(torch.equal(plain[k], with_bar[k]) for k in plain)


def test_no_bar_above_info_level(minilm, capsys, caplog):
    caplog.set_level(logging.WARNING, logger="engine.weights")
    for _ in iterate_weights(minilm, progress=True):
        pass
    assert capsys.readouterr().err == ""
