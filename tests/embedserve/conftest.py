"""One in-process Engine on the embedded default model, shared by the module that asks for it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def default_engine():
    from embedserve import Engine

    with Engine() as engine:
        yield engine
