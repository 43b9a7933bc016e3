"""The kernel's side of brokered reads (see :mod:`jupyter_guard.broker`).

A decision that says ``access: brokered`` comes with a ticket. Instead of calling the reader,
the kernel sends the ticket and the shape of the read (format, columns, row filters, the
reader's CSV options) to the broker — the guard service, or on one machine the server — and
builds the reader's usual result from the Arrow stream it answers with: a pandas DataFrame,
a polars DataFrame (LazyFrame for ``scan_*``), a pyarrow Table. The file itself is not opened
here: under a brokered layout this process could not open it.

What a reader is asked that a broker cannot do (a callable ``usecols``, a file handle, an
option that is not a JSON value) is refused before anything is sent, saying how to read it.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlsplit

from ..broker import BATCH_ROWS, read_stream
from ..errors import GuardDenied
from .client import ENV_TOKEN, TOKEN_HEADER
from .guard import governed
from .report import read_entry

ENV_BROKER = "JUPYTER_GUARD_BROKER_URL"
ENV_READ_TIMEOUT = "JUPYTER_GUARD_READ_TIMEOUT"
ENV_BATCH_ROWS = "JUPYTER_GUARD_BATCH_ROWS"  # rows per streamed batch (the broker's memory per read)
READ_TIMEOUT = 600.0  # seconds between two chunks: a batch of free text through the NER tier is slow
PROGRESS_DELAY = 2.0  # seconds before a progress bar appears: short reads show none

SUFFIX_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".gz": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".feather": "feather", ".arrow": "feather", ".ipc": "feather"}
#: numpy/python types a CSV ``dtype=`` may name, as JSON strings the broker's pandas understands
DTYPE_NAMES = {str: "str", int: "int64", float: "float64", bool: "bool", object: "object"}


class Shape:
    """How one reader call becomes a brokered read, and how its result is built."""

    def __init__(self, fmt: str, *, columns=None, filters=None, options=None, result: str = "pandas", lazy=False):
        self.format, self.columns, self.filters = fmt, columns, filters
        self.options = options or {}
        self.result, self.lazy = result, lazy
        self.query: str | None = None  # format sql
        self.source: str | None = None

    def body(self, ticket) -> dict:
        """The read route's body; ``ticket``: the decision's (a list of every table's, for SQL)."""
        body: dict[str, Any] = {"format": self.format, "batch_rows": _batch_rows()}
        body["tickets" if isinstance(ticket, list) else "ticket"] = ticket
        if self.columns is not None:
            body["columns"] = list(self.columns)
        if self.filters is not None:
            body["filters"] = _jsonable_filters(self.filters)
        if self.options:
            body["options"] = self.options
        if self.format == "sql":
            body["query"], body["source"] = self.query, self.source
        return body


def shape_of(reader: str, target: str, kwargs: dict, extra_args: tuple = ()) -> Shape:
    """The brokered read a reader call asks for; GuardDenied for what a broker cannot serve."""
    if extra_args:
        raise _unsupported(reader, "positional arguments after the path; pass them by name")
    lib, _, name = reader.rpartition(".")
    kw = dict(kwargs)
    if lib == "pandas" and name in ("read_csv", "read_table"):
        if name == "read_table":
            kw.setdefault("sep", "\t")
        usecols = kw.pop("usecols", None)
        if usecols is not None and not (isinstance(usecols, (list, tuple)) and all(isinstance(c, str) for c in usecols)):
            raise _unsupported(reader, "usecols= other than a list of column names")
        if "dtype" in kw:
            kw["dtype"] = _dtypes(reader, kw["dtype"])
        return Shape("csv", columns=list(usecols) if usecols is not None else None, options=_json_options(reader, kw))
    if lib == "pandas" and name in ("read_parquet", "read_feather"):
        columns, filters = kw.pop("columns", None), kw.pop("filters", None)
        kw.pop("engine", None)
        _no_more(reader, kw)
        return Shape("parquet" if name == "read_parquet" else "feather", columns=columns, filters=filters)
    if lib == "polars" and name in ("read_csv", "scan_csv", "read_parquet", "scan_parquet", "read_ipc", "scan_ipc"):
        columns = kw.pop("columns", None)
        if columns is not None and not all(isinstance(c, str) for c in columns):
            raise _unsupported(reader, "columns= other than a list of column names")
        fmt = {"csv": "csv", "parquet": "parquet", "ipc": "feather"}[name.split("_", 1)[1]]
        options = {}
        if fmt == "csv":
            if "separator" in kw:
                options["sep"] = kw.pop("separator")
            if "n_rows" in kw:
                options["nrows"] = kw.pop("n_rows")
        _no_more(reader, kw)
        return Shape(fmt, columns=columns, options=options, result="polars", lazy=name.startswith("scan_"))
    if lib == "pyarrow.parquet" and name == "read_table":
        columns, filters = kw.pop("columns", None), kw.pop("filters", None)
        _no_more(reader, kw)
        return Shape("parquet", columns=columns, filters=filters, result="arrow")
    if lib == "pyarrow.csv" and name == "read_csv":
        _no_more(reader, kw)
        return Shape("csv", result="arrow")
    raise GuardDenied(f"this data is brokered (only the guard reads it), and {reader} cannot be served that way. "
                      "Read it with pandas.read_csv/read_parquet/read_feather, polars.read_csv/read_parquet/scan_*, "
                      "pyarrow's readers, or jupyter_guard.read(name, columns=..., filters=...).")


def read_sql(guard, reader: str, source, sql: str, targets: list[tuple[str, str]], decisions: list[dict],
             result: str) -> Any:
    """``pd.read_sql(sql, con=connect("brokered source"))``: the guard runs the query."""
    __tracebackhide__ = True
    missing = [t for (t, _), d in zip(targets, decisions) if not d.get("ticket")]
    if missing:
        raise GuardDenied(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not catalogued as brokered tables "
                          f"of {source.name!r}, and the guard runs a brokered source's queries only on its catalogued "
                          "tables; ask the data steward to catalogue them.", decision=decisions[0] if decisions else None)
    if not targets:
        raise GuardDenied(f"this query on the brokered source {source.name!r} reads no table; nothing to run")
    shape = Shape("sql", options={}, result=result)
    shape.query, shape.source = sql, source.name
    first = {**decisions[0], "ticket": [d["ticket"] for d in decisions]}
    table, report = fetch(first, shape)
    tables = [] if table is None else (table if isinstance(table, list) else [table])
    del table
    for i, ((target, _), d) in enumerate(zip(targets, decisions)):
        entry = read_entry(d, reader, target, rows=report.get("rows"), access="brokered",
                           cells=report.get("cells") if i == 0 else None)
        own = {str(c.get("name")).lower() for c in d.get("columns") or ()}
        entry["columns"] = {c: r for c, r in (report.get("columns") or {}).items() if c.lower() in own} if i else \
            report.get("columns") or {}
        entry["entity_counts"] = (report.get("entity_counts") or {}) if i == 0 else {}
        guard.report(entry)
    return _result(tables, shape)


def format_of(target: str) -> str:
    """The format of a file named to ``jupyter_guard.read`` (a directory: Parquet partitions)."""
    path = target.rstrip("/")
    base, ext = os.path.splitext(path.lower())
    if ext == ".gz":
        ext = os.path.splitext(base)[1] or ext
    fmt = SUFFIX_FORMATS.get(ext)
    if fmt is None and not ext:
        return "parquet"  # a directory of partitions
    if fmt is None:
        raise GuardDenied(f"jupyter_guard.read cannot tell the format of {target}; pass format='csv', "
                          "'parquet' or 'feather'")
    return fmt


def read(guard, reader: str, targets: list[tuple[str, str]], decisions: list[dict], shape: Shape) -> Any:
    """Each target read through the broker, as one result of the shape's kind."""
    __tracebackhide__ = True
    direct = [t for (t, _), d in zip(targets, decisions) if d.get("access") != "brokered"]
    if direct:
        raise GuardDenied(f"{reader} was asked for brokered data (only the guard reads it) together with "
                          f"{', '.join(direct)}, which this kernel reads itself; read them in two calls and "
                          "combine the frames.")
    tables = []
    for (target, _), d in zip(targets, decisions):
        table, report = fetch(d, shape)
        if table is not None:
            tables.extend(table if isinstance(table, list) else [table])
        del table
        entry = read_entry(d, reader, target, rows=report.get("rows"), access="brokered",
                           cells=report.get("cells"))
        entry["columns"] = report.get("columns") or {}
        entry["entity_counts"] = report.get("entity_counts") or {}
        guard.report(entry)
    return _result(tables, shape)


def fetch(decision: dict, shape: Shape):
    """(Arrow table(s) or None, report) of one brokered read, whole or not at all."""
    __tracebackhide__ = True
    ticket = decision.get("ticket")
    url = os.environ.get(ENV_BROKER)
    if not ticket or not url:
        why = "the decision came without a ticket" if not ticket else f"{ENV_BROKER} is not set in this kernel"
        raise GuardDenied(f"{decision.get('dataset')!r} is brokered (only the guard reads it), but {why}; the "
                          "read is refused. Restart the kernel from JupyterLab; tell your admin if it persists.",
                          decision=decision)
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=_timeout())
    headers = {"Content-Type": "application/json", "Accept": "application/vnd.apache.arrow.stream"}
    if os.environ.get(ENV_TOKEN):
        headers[TOKEN_HEADER] = os.environ[ENV_TOKEN]  # the server's route wants the kernel token too
    with governed():  # the guard's own HTTP and Arrow imports are not governed reads
        try:
            conn.request("POST", parts.path, body=json.dumps(shape.body(ticket)).encode(), headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise GuardDenied(f"jupyter_guard cannot reach the guard that reads {decision.get('dataset')!r} at "
                              f"{url} ({type(e).__name__}: {e}); nothing was read. Tell your admin if this "
                              "persists.", decision=decision) from None
        try:
            if response.status != 200:
                raise GuardDenied(_refused(response, decision), decision=decision)
            with _progress(decision) as progress:
                return read_stream(response, on_rows=progress)
        finally:
            conn.close()


def _result(tables: list, shape: Shape) -> Any:
    """The reader's kind of result from Arrow tables, which it consumes (``tables`` is emptied:
    each table's buffers are freed as it is converted, so the kernel holds little more than
    the result)."""
    import pyarrow as pa

    if shape.result == "arrow":
        if not tables:
            return pa.table({})
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    if shape.result == "polars":
        import polars as pl

        frames = []
        while tables:
            frames.append(pl.from_arrow(tables.pop(0)))
        frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else (frames[0] if frames else pl.DataFrame())
        return frame.lazy() if shape.lazy else frame
    import pandas as pd

    frames = []
    while tables:
        frames.append(tables.pop(0).to_pandas(split_blocks=True, self_destruct=True))
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _refused(response, decision: dict) -> str:
    raw = response.read()
    try:
        message = json.loads(raw).get("message")
    except (ValueError, AttributeError):
        message = None
    return message or (f"the guard refused to serve this brokered read of {decision.get('dataset')!r} "
                       f"(HTTP {response.status}); nothing was read. Tell your admin if this persists.")


class _progress:
    """A tqdm bar of rows received, shown only for reads longer than PROGRESS_DELAY seconds."""

    def __init__(self, decision: dict):
        self.name = decision.get("dataset") or "data"
        self.bar = None

    def __enter__(self):
        try:
            import importlib.util

            if importlib.util.find_spec("ipywidgets") is not None:  # a widget in JupyterLab
                from tqdm.notebook import tqdm
            else:  # text on stderr (tqdm.auto would warn about the missing widgets)
                from tqdm import tqdm

            self.bar = tqdm(desc=f"reading {self.name} (brokered)", unit=" rows", delay=PROGRESS_DELAY, leave=False)
        except Exception:  # noqa: BLE001 - a progress bar is a nicety; the read goes on without
            self.bar = None
        return self.update if self.bar is not None else None

    def update(self, rows: int) -> None:
        self.bar.update(rows)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _batch_rows() -> int:
    try:
        return min(10_000_000, max(1, int(os.environ.get(ENV_BATCH_ROWS) or BATCH_ROWS)))
    except ValueError:
        return BATCH_ROWS


def _timeout() -> float:
    try:
        return max(1.0, float(os.environ.get(ENV_READ_TIMEOUT) or READ_TIMEOUT))
    except ValueError:
        return READ_TIMEOUT


def _unsupported(reader: str, what: str) -> GuardDenied:
    return GuardDenied(f"this data is brokered (only the guard reads it), and a brokered {reader} does not take {what}. "
                       "Read with the defaults (or columns= and filters=) and transform the frame afterwards.")


def _no_more(reader: str, kwargs: dict) -> None:
    if kwargs:
        raise _unsupported(reader, ", ".join(f"{k}=" for k in sorted(kwargs)))


def _json_options(reader: str, options: dict) -> dict:
    try:
        json.dumps(options)
    except (TypeError, ValueError):
        bad = sorted(k for k, v in options.items() if not _is_json(v))
        raise _unsupported(reader, f"{', '.join(k + '=' for k in bad)} with values that are not plain data") from None
    return options


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _dtypes(reader: str, dtype: Any) -> Any:
    def name(t):
        if isinstance(t, str):
            return t
        if t in DTYPE_NAMES:
            return DTYPE_NAMES[t]
        text = str(getattr(t, "name", "") or "")
        if text:
            return text
        raise _unsupported(reader, f"dtype={t!r}")

    if isinstance(dtype, dict):
        return {str(k): name(v) for k, v in dtype.items()}
    return name(dtype)


def _jsonable_filters(filters: Any) -> list:
    """pyarrow's DNF filters (tuples, sets) as JSON lists."""
    if isinstance(filters, (list, tuple)):
        return [_jsonable_filters(f) if isinstance(f, (list, tuple, set)) else f for f in filters]
    if isinstance(filters, set):
        return sorted(filters)
    return filters

