"""``jupyter_guard.read(name_or_path, columns=..., filters=...)``: one governed reader for
datasets by name or path, brokered or read here, with projection and row filters."""

from __future__ import annotations

import os
from typing import Any

from ..broker import filter_frame, parse_filters, refuse_hidden_filters
from ..errors import GuardDenied
from .brokered import Shape, _jsonable_filters, format_of, read
from .guard import STATE, governed
from .hooks import ORIGINAL, path_target

RESULTS = ("pandas", "polars", "arrow")


def read_dataset(name_or_path: str | os.PathLike, *, columns: list[str] | None = None, filters: list | None = None,
                 format: str | None = None, as_: str = "pandas") -> Any:  # noqa: A002 - the reader's word
    """A governed read by dataset name or path, brokered or not: decided, recorded, redacted.

    ``columns`` and ``filters`` (pyarrow's DNF: ``[("age", ">", 40)]``) are pushed down to the
    reader, which for brokered data runs in the guard; ``as_`` is "pandas", "polars" or "arrow".
    """
    __tracebackhide__ = True
    if as_ not in RESULTS:
        raise ValueError(f"as_ is one of {', '.join(RESULTS)}, not {as_!r}")
    guard = STATE.get("guard")
    if guard is None:
        raise GuardDenied("jupyter_guard.read() needs jupyter_guard's kernel guard, which is not loaded in this kernel. "
                          "Open the notebook through JupyterLab (the server loads it), or run %load_ext jupyter_guard.kernel.")
    value = os.fspath(name_or_path)
    is_path = os.sep in value or "." in os.path.basename(value) or os.path.exists(value)
    target, kind = (path_target(value), "path") if is_path else (value, "dataset")
    reader = "jupyter_guard.read"
    decision = guard.decide_all([(target, kind)], reader)[0]
    fmt = format or format_of(decision.get("target") or target)
    checked = parse_filters(_jsonable_filters(filters)) if filters is not None else None
    if decision.get("effect") == "redact":
        refuse_hidden_filters(decision.get("dataset"), ((c["name"], c["rule"]) for c in decision.get("columns") or ()),
                              checked)
    if decision.get("access") == "brokered":
        shape = Shape(fmt, columns=columns, filters=filters, result=as_)
        return guard.apply_brokered(read(guard, reader, [(target, kind)], [decision], shape), [decision])
    # read here: the pandas reader itself (not its wrapper: this is the decided read), then the rules
    import pandas as pd

    path = decision.get("target") or target
    with governed():
        if fmt == "csv":
            frame = getattr(pd.read_csv, ORIGINAL, pd.read_csv)(path, usecols=columns)
        elif fmt == "parquet":
            frame = getattr(pd.read_parquet, ORIGINAL, pd.read_parquet)(path, columns=columns, filters=filters)
        else:
            frame = getattr(pd.read_feather, ORIGINAL, pd.read_feather)(path, columns=columns)
        if checked and fmt == "csv":
            frame = filter_frame(frame, checked)
    frame = guard.apply(frame, [(path, "path")], [decision], reader, {})
    if as_ == "pandas":
        return frame
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if as_ == "arrow":
        return table
    import polars as pl

    return pl.from_arrow(table)
