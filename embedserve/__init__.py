"""embedserve as a library: `Engine` embeds in your own process; `embedserve embed` (embedserve.bulk) embeds files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedserve.engine import Engine, EngineError

__all__ = ["Engine", "EngineError"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the engine brings torch and transformers, which `embedserve --help` never needs.
    if name in __all__:
        from embedserve import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'embedserve' has no attribute {name!r}")
