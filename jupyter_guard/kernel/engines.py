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


class BrokeredSource:
    """What ``connect("name")`` returns for a brokered source: no engine and no secret, only the
    source's name and SQL dialect. ``pd.read_sql(sql, con=this)`` is run by the guard, which
    holds the secret; anything else given this handle has nothing to connect with."""

    def __init__(self, name: str, dialect: str):
        self.name, self.dialect = name, dialect

    def __repr__(self) -> str:
        return f"<brokered data source {self.name!r} ({self.dialect}): read it with pd.read_sql(sql, con=this)>"

    def __getattr__(self, attr: str):  # engine.connect(), .execute(...): say why, not AttributeError
        if attr.startswith("__"):
            raise AttributeError(attr)
        from ..errors import GuardDenied

        raise GuardDenied(f"data source {self.name!r} is brokered: only the guard connects to it, so this handle "
                          f"has no {attr}. Read with pd.read_sql(sql, con=...) or polars.read_database(sql, ...), "
                          "which the guard runs for you.")
