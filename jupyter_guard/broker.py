"""Brokered reads: a dataset the user's processes cannot open is read by the guard service
(on one machine without a service: by the single-user server), redacted there by the
decision's column rules, and streamed to the kernel as Arrow IPC.

A read is two steps, so that deciding stays in one place (the governor):

1. the kernel asks for a decision as for any read; a permitted decision on a brokered dataset
   comes back with a **ticket** — an HMAC-signed, short-lived, single-use grant naming the user,
   the dataset, the resolved target, the effect and the decision's audit record;
2. the kernel sends the ticket with what it wants (format, columns, row filters, reader
   options) to the read route, which checks the ticket, opens only files of that dataset, and
   yields the result as a sequence of Arrow IPC streams, ending with a trailer stream that
   carries the redaction report. A response without the trailer is incomplete: the kernel
   returns nothing.

The pseudonym and encryption keys stay with the reader: the kernel receives redacted batches.
This module imports no web framework; the routes that stream its chunks are thin.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import io
import json
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import GuardDenied

TICKET_TTL = 60.0  # seconds between the decision and the read it allows
BATCH_ROWS = 65_536  # rows per streamed batch: the reader's memory is bounded by this, not the file
TRAILER = b"jupyter_guard.trailer"  # schema metadata key of the last stream: the read's report
FORMATS = ("csv", "parquet", "feather", "sql")
#: pandas.read_csv options a brokered CSV read passes on (JSON values only); others are refused
CSV_OPTIONS = frozenset({
    "sep", "delimiter", "usecols", "nrows", "skiprows", "na_values", "keep_default_na", "na_filter", "dtype",
    "parse_dates", "date_format", "dayfirst", "encoding", "quotechar", "decimal", "thousands", "comment",
    "true_values", "false_values", "skipinitialspace", "skip_blank_lines", "escapechar", "doublequote",
})
#: filter operators (pyarrow's DNF form, as pandas.read_parquet(filters=...) takes them)
FILTER_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")


class BrokerError(GuardDenied):
    """A brokered read that cannot be carried out as asked (a bad ticket, a filter on a redacted
    column, an option the broker does not take). Raised before anything is read."""

    status = 400


# -- tickets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a valid ticket allows: one read of ``target`` (of ``dataset``) by ``user``."""

    user: str
    dataset: str
    target: str
    effect: str  # allow | redact | justify (permitted)
    audit_seq: int | None
    expires: float
    nonce: str


class Tickets:
    """Issues and redeems tickets with a key held only by the reader (random per process
    start: a restarted service simply invalidates the tickets of the last minute)."""

    def __init__(self, key: bytes | None = None, *, ttl: float = TICKET_TTL, clock=time.time):
        self._key = key or secrets.token_bytes(32)
        self.ttl = ttl
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry
        self._lock = threading.Lock()

    def issue(self, *, user: str, dataset: str, target: str, effect: str, audit_seq: int | None) -> str:
        grant = {"u": user, "d": dataset, "t": target, "e": effect, "s": audit_seq,
                 "x": round(self._clock() + self.ttl, 3), "n": secrets.token_hex(12)}
        payload = _b64(json.dumps(grant, separators=(",", ":"), sort_keys=True).encode())
        return payload + "." + _b64(self._mac(payload))

    def redeem(self, ticket: str, *, user: str | None) -> Grant:
        """The grant of a valid, unexpired, unused ticket of ``user``; BrokerError otherwise."""
        payload, _, mac = (ticket or "").partition(".")
        try:
            good = hmac.compare_digest(_unb64(mac), self._mac(payload))
            data = json.loads(_unb64(payload)) if good else None
        except ValueError:
            good, data = False, None
        if not good or not isinstance(data, dict):
            raise BrokerError("this read's ticket is not one the guard issued (or it was altered); ask for the read "
                              "again: the decision gives a new one")
        grant = Grant(str(data["u"]), str(data["d"]), str(data["t"]), str(data["e"]), data.get("s"),
                      float(data["x"]), str(data["n"]))
        now = self._clock()
        if grant.expires < now:
            raise BrokerError(f"this read's ticket expired ({self.ttl:.0f} s after the decision); read again")
        if user is not None and user != grant.user:
            raise BrokerError(f"this read's ticket was issued to {grant.user}, not to {user}")
        with self._lock:
            for n in [n for n, x in self._used.items() if x < now]:
                del self._used[n]
            if grant.nonce in self._used:
                raise BrokerError("this read's ticket was already used; each decision allows one read")
            self._used[grant.nonce] = grant.expires
        return grant

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise ValueError(str(e)) from None


# -- what the kernel asks for ------------------------------------------------------------


@dataclass(frozen=True)
class ReadSpec:
    """The shape of one brokered read, as the kernel's reader asked for it."""

    format: str
    columns: tuple[str, ...] | None = None
    filters: tuple | None = None  # DNF: ((col, op, value), ...) or ((...), (...)) for OR of ANDs
    options: Mapping[str, Any] = field(default_factory=dict)  # pandas.read_csv options
    batch_rows: int = BATCH_ROWS
    query: str | None = None  # format sql: the query, run by the guard on ``source``
    source: str | None = None

    @classmethod
    def from_body(cls, body: Mapping) -> ReadSpec:
        fmt = body.get("format")
        if fmt not in FORMATS:
            raise BrokerError(f"a brokered read is of format {', '.join(FORMATS)}, not {fmt!r}")
        columns = body.get("columns")
        if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise BrokerError("columns is a list of column names")
        filters = parse_filters(body.get("filters"))
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise BrokerError("options is a mapping of reader options")
        unknown = sorted(set(options) - CSV_OPTIONS) if fmt == "csv" else sorted(options)
        if unknown:
            raise BrokerError(f"a brokered {fmt} read does not take {', '.join(unknown)}; read with the default "
                              "options (or only columns= and filters=) and transform the frame afterwards")
        rows = body.get("batch_rows") or BATCH_ROWS
        if not isinstance(rows, int) or not 1 <= rows <= 10_000_000:
            raise BrokerError("batch_rows is a number of rows between 1 and 10,000,000")
        query, source = body.get("query"), body.get("source")
        if fmt == "sql" and not (isinstance(query, str) and query.strip() and isinstance(source, str) and source):
            raise BrokerError("a brokered SQL read names its query and its source")
        if fmt == "sql" and (columns is not None or filters is not None):
            raise BrokerError("a brokered SQL read selects its columns and rows in its query")
        return cls(fmt, tuple(columns) if columns is not None else None, filters, dict(options), rows,
                   query if fmt == "sql" else None, source if fmt == "sql" else None)


def parse_filters(raw) -> tuple | None:
    """Row filters in pyarrow's DNF form, checked: a list of (column, op, value), or a list of such lists."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise BrokerError("filters is a list of [column, op, value] (or a list of such lists, OR-ed)")
    groups = raw if all(isinstance(f, list) and f and isinstance(f[0], list) for f in raw) else [raw]
    out = []
    for group in groups:
        terms = []
        for term in group:
            if not isinstance(term, (list, tuple)) or len(term) != 3 or not isinstance(term[0], str) \
                    or term[1] not in FILTER_OPS:
                raise BrokerError(f"filter {term!r} is not [column, op, value] with op one of {', '.join(FILTER_OPS)}")
            value = tuple(term[2]) if term[1] in ("in", "not in") else term[2]
            terms.append((term[0], term[1], value))
        out.append(tuple(terms))
    return tuple(out)


def filter_columns(filters: tuple | None) -> set[str]:
    return {t[0] for group in filters or () for t in group}


def refuse_hidden_filters(dataset: str, rules, filters: tuple | None) -> None:
    """A row filter on a column read redacted would tell its raw values by which rows come
    back: refused (``rules``: (column, rule) pairs of a redacted read)."""
    ruled = {str(column).lower(): rule for column, rule in rules}
    hidden = sorted(c for c in filter_columns(filters) if ruled.get(c.lower(), "keep") != "keep")
    if hidden:
        raise BrokerError(
            f"{dataset!r} is read redacted, and a row filter on {', '.join(hidden)} (redacted) would tell you "
            "their raw values by which rows come back; filter on other columns, or filter the redacted frame "
            "afterwards")


def filter_frame(frame, filters: tuple):
    """``frame`` (pandas) with only the rows the DNF ``filters`` keep."""
    return _filtered(frame, _expression(filters))


def _expression(filters: tuple):
    import pyarrow.parquet as pq

    return pq.filters_to_expression([list(group) for group in filters])


# -- the read -----------------------------------------------------------------------------


def rules_for(dataset, names, *, effect: str) -> list[dict]:
    """The dataset's column rules named as the data names its columns (exact, else any case,
    as the in-kernel path matches them); none unless the effect is redact."""
    if effect != "redact":
        return []
    by_lower: dict[str, list] = {}
    for n in names:
        by_lower.setdefault(str(n).lower(), []).append(n)
    out = []
    for c in dataset.columns:
        hits = [c.column] if c.column in names else by_lower.get(c.column.lower(), [])
        out.extend({"name": h, "entity": c.entity, "rule": c.rule} for h in hits)
    return out


class BrokeredRead:
    """One granted read: ``check()`` (before anything is sent), then ``chunks()`` (bytes)."""

    def __init__(self, catalog, grant: Grant, spec: ReadSpec, redactor_factory):
        self.catalog, self.grant, self.spec = catalog, grant, spec
        self._redactor_factory = redactor_factory
        self.dataset = catalog.datasets.get(grant.dataset)
        self.files: list[str] = []
        self.rows = 0
        self.bytes_sent = 0
        self.columns: dict[str, str] = {}
        self.entity_counts: Counter = Counter()
        self.cells = 0
        self.wrapped_keys: dict[str, str] = {}
        self._memos: dict = {}  # redaction results across this read's batches (bounded per rule)

    # checks

    def check(self) -> BrokeredRead:
        """Refuse before reading: a dataset no longer in the catalog, a target with files of
        another dataset, a filter on a column the reader must redact or drop."""
        if self.dataset is None:
            raise BrokerError(f"dataset {self.grant.dataset!r} is no longer in the catalog; read again")
        if self.grant.effect == "redact":
            refuse_hidden_filters(self.grant.dataset, ((c.column, c.rule) for c in self.dataset.columns),
                                  self.spec.filters)
        if any(c.rule == "encrypt" for c in self.dataset.columns) and self.grant.effect == "redact":
            raise BrokerError(f"{self.grant.dataset!r} has an encrypt column rule, which brokered reads do not apply "
                              "yet (each batch would wrap its own key); ask the steward for another rule")
        self.files = self._files()
        return self

    def _files(self) -> list[str]:
        """The files the target reads, each governed by the granted dataset."""
        target = self.grant.target
        if os.path.isdir(target):
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(target) for f in fs
                           if not f.startswith((".", "_")))
        elif any(ch in target for ch in "*?[") and not os.path.exists(target):
            import glob

            files = sorted(p for p in glob.glob(target, recursive=True) if os.path.isfile(p))
        else:
            files = [target]
        if not files:
            raise BrokerError(f"{target} names no file the guard can read")
        for f in files:
            if not os.path.exists(f):
                raise BrokerError(f"{f} does not exist (any more); nothing was read")
            if not os.access(f, os.R_OK):  # the guard's own account: the admin's layout is wrong
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), f)
            res = self.catalog.resolve(f, "path")
            if res.dataset is None or res.dataset.name != self.grant.dataset:
                other = repr(res.dataset.name) if res.dataset else "no dataset"
                raise BrokerError(f"{f} belongs to {other}, not to {self.grant.dataset!r}; read it on its own")
        return files

    # reading

    def chunks(self) -> Iterator[bytes]:
        """The response body: Arrow IPC streams (a new one whenever the schema changes), then the
        trailer stream. Generated lazily, one batch at a time (the caller's pace is the pace)."""
        import pyarrow as pa

        writer, sink, schema = None, None, None
        for frame in self._frames():
            frame = self._redact(frame)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if schema is None or not table.schema.equals(schema, check_metadata=False):
                if writer is not None:
                    writer.close()
                    yield self._take(sink)
                schema, sink = table.schema, io.BytesIO()
                writer = pa.ipc.new_stream(sink, schema)
            for batch in table.to_batches(max_chunksize=self.spec.batch_rows):
                writer.write_batch(batch)
            self.rows += table.num_rows
            yield self._take(sink)
        if writer is not None:
            writer.close()
            yield self._take(sink)
        yield self.trailer()

    def _take(self, sink: io.BytesIO) -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        self.bytes_sent += len(data)
        return data

    def trailer(self) -> bytes:
        import pyarrow as pa

        schema = pa.schema([], metadata={TRAILER: json.dumps(self.report()).encode()})
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, schema):
            pass
        return sink.getvalue()

    def report(self) -> dict:
        """What was done, for the cell's audit record: names, rules and counts, never values."""
        return {"rows": self.rows, "columns": dict(self.columns), "entity_counts": dict(self.entity_counts),
                "cells": self.cells, "files": len(self.files), "wrapped_keys": dict(self.wrapped_keys),
                "dataset": self.grant.dataset, "audit_seq": self.grant.audit_seq}

    def _rules(self, frame) -> list[dict]:
        """The column rules of ``frame``'s columns (none unless the grant redacts)."""
        return rules_for(self.dataset, list(frame.columns), effect=self.grant.effect)

    def _redact(self, frame):
        rules = self._rules(frame)
        if not rules:
            return frame
        out, rep = self._redactor_factory().redact_frame(frame, rules, memos=self._memos)
        self.columns.update(rep.columns)
        self.entity_counts.update(rep.entity_counts)
        self.cells += rep.cells
        self.wrapped_keys.update(rep.wrapped_keys)
        return out

    def _frames(self):
        """pandas frames of at most batch_rows rows, file after file."""
        if self.spec.format == "csv":
            yield from self._csv()
        else:
            yield from self._arrow()

    def _csv(self):
        import pandas as pd

        options = dict(self.spec.options)
        usecols = options.pop("usecols", None)
        columns = list(self.spec.columns or usecols or ()) or None
        expression = _expression(self.spec.filters) if self.spec.filters else None
        for f in self.files:
            with pd.read_csv(f, usecols=columns, chunksize=self.spec.batch_rows, **options) as reader:
                for chunk in reader:
                    if expression is not None:
                        chunk = _filtered(chunk, expression)
                    yield chunk.reset_index(drop=True)

    def _arrow(self):
        import pyarrow.dataset as ds

        data = ds.dataset(self.files, format="ipc" if self.spec.format == "feather" else "parquet")
        # no read-ahead beyond the next batch, and no pre-buffering of a file's row groups: the
        # reader's memory follows the batch, not the file
        options = {"fragment_scan_options": ds.ParquetFragmentScanOptions(pre_buffer=False)} \
            if self.spec.format == "parquet" else {}
        scanner = data.scanner(columns=list(self.spec.columns) if self.spec.columns else None,
                               filter=_expression(self.spec.filters) if self.spec.filters else None,
                               batch_size=self.spec.batch_rows, batch_readahead=1, fragment_readahead=1,
                               use_threads=False, **options)
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield batch.to_pandas()


def _filtered(frame, expression):
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False).filter(expression)
    return table.to_pandas()


class BrokeredSqlRead(BrokeredRead):
    """A brokered SQL read: the guard runs the kernel's query on a catalogued source with the
    secret only it holds. Every table the query reads — found again here with sqlglot, never
    taken from the kernel — must be catalogued and granted by one of the read's tickets; column
    rules follow their columns through aliases, as in the kernel."""

    def __init__(self, catalog, grants: list[Grant], spec: ReadSpec, redactor_factory, source_url):
        super().__init__(catalog, grants[0], spec, redactor_factory)
        self.grants = grants
        self._source_url = source_url  # source name -> SQLAlchemy URL with its secret (the guard's)
        self.rules: dict[str, dict] = {}
        self.derived: dict[str, str] = {}

    def check(self) -> BrokeredSqlRead:
        from .kernel.guard import RULE_STRICTNESS  # two tables' rules on one column: the stricter, as the kernel
        from .kernel.sql import DEFAULT_SCHEMAS, SQLGLOT_DIALECTS, Connection, derived_columns, sql_tables

        source = self.catalog.sources.get(self.spec.source)
        if source is None:
            raise BrokerError(f"no data source {self.spec.source!r} in the catalog")
        if len({g.user for g in self.grants}) != 1:
            raise BrokerError("the tickets of one read are one user's")
        dialect = source.dialect
        schema = DEFAULT_SCHEMAS.get(dialect) or "unknown"
        read = sql_tables(self.spec.query, Connection(source.name, schema, SQLGLOT_DIALECTS.get(dialect)))
        granted = {g.dataset: g for g in self.grants}
        datasets = []
        for table in read.targets:
            res = self.catalog.resolve(table, "table")
            if res.dataset is None:
                raise BrokerError(f"{table} is not in the catalog; a brokered query reads catalogued tables only")
            if res.dataset.name not in granted:
                raise BrokerError(f"{table} ({res.dataset.name!r}) was not decided for this read; run the cell again")
            datasets.append(res.dataset)
        for ds in dict.fromkeys(datasets):
            if granted[ds.name].effect != "redact":
                continue
            for c in ds.columns:
                old = self.rules.get(c.column.lower())
                if c.rule == "encrypt":
                    raise BrokerError(f"{ds.name!r} has an encrypt column rule, which brokered reads do not apply yet")
                if old is None or RULE_STRICTNESS.get(c.rule, 9) > RULE_STRICTNESS.get(old["rule"], 9):
                    self.rules[c.column.lower()] = {"entity": c.entity, "rule": c.rule}
        if self.rules:
            self.derived, problems = derived_columns(read, set(self.rules))
            if problems:
                raise BrokerError("this query's result cannot be redacted column by column: " + "; ".join(problems)
                                  + ". Select the columns by name (with aliases) instead.")
        self.dataset = datasets[0] if datasets else self.dataset
        return self

    def report(self) -> dict:
        return {**super().report(), "datasets": sorted({g.dataset for g in self.grants})}

    def _frames(self):
        import pandas as pd
        import sqlalchemy

        engine = sqlalchemy.create_engine(self._source_url(self.spec.source))
        try:
            with engine.connect() as conn:
                for chunk in pd.read_sql(sqlalchemy.text(self.spec.query), conn, chunksize=self.spec.batch_rows):
                    yield chunk
        finally:
            engine.dispose()

    def _rules(self, frame) -> list[dict]:
        """The tables' rules, by result column name or through the alias that carries a ruled column."""
        rules = []
        for name in frame.columns:
            key = str(name).lower()
            rule = self.rules.get(key) or self.rules.get(self.derived.get(key, ""))
            if rule is not None:
                rules.append({"name": name, **rule})
        return rules


# -- the kernel's side: building the result from the stream ------------------------------


class IncompleteRead(GuardDenied):
    """The stream ended before its trailer: the reader stopped mid-read. Nothing is returned."""


def read_stream(raw, *, on_rows=None):
    """(Arrow table, report) from a response body (a file-like object). Raises IncompleteRead
    when the trailer never came: a read is whole or nothing."""
    import pyarrow as pa

    tables, report = [], None
    while report is None:
        try:
            reader = pa.ipc.open_stream(raw)
        except Exception as e:  # noqa: BLE001 - any failure mid-stream (HTTP, Arrow): nothing is returned
            raise IncompleteRead(_incomplete(e)) from None
        meta = reader.schema.metadata or {}
        if TRAILER in meta:
            report = json.loads(meta[TRAILER])
            break
        batches = []
        try:
            for batch in reader:
                batches.append(batch)
                if on_rows is not None:
                    on_rows(batch.num_rows)
        except Exception as e:  # noqa: BLE001 - any failure mid-stream (HTTP, Arrow): nothing is returned
            raise IncompleteRead(_incomplete(e)) from None
        tables.append(pa.Table.from_batches(batches, schema=reader.schema))
        del batches
    if not tables:
        return None, report
    if len(tables) == 1:
        return tables[0], report
    try:
        return pa.concat_tables(tables, promote_options="permissive"), report
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return tables, report  # schemas that do not unify (a column typed differently per chunk)


def _incomplete(error: BaseException) -> str:
    return ("the guard stopped sending this brokered read before it was complete "
            f"({type(error).__name__}: {error}); nothing was returned. Run the cell again; if it keeps "
            "failing, tell your admin (the guard service may have restarted).")
