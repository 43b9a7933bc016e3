"""Which catalog source an engine was made for by :func:`jupyter_guard.connect` (so SQL read
through it names tables as ``source.schema.table``). Imports nothing of the guard: both
``connect`` and ``sql`` use it without importing each other."""

from __future__ import annotations

import weakref
from typing import Any

#: engine -> the catalog source it was made for (weak: a dropped engine is forgotten)
_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember(engine: Any, source: str) -> None:
    _ENGINES[engine] = source


def source_of(con: Any) -> str | None:
    """The catalog source an engine (or a connection of it) was made for by :func:`connect`."""
    engine = getattr(con, "engine", None)  # Engine.engine is itself; Connection.engine its engine
    for _ in range(8):  # engine.execution_options(...) is an OptionEngine proxying the registered one
        if engine is None:
            return None
        try:
            found = _ENGINES.get(engine)
        except TypeError:  # not weak-referenceable or not hashable: not ours
            return None
        if found is not None:
            return found
        engine = getattr(engine, "_proxied", None)
    return None
