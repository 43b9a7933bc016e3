"""The audit log in one PostgreSQL table, shared by every server of a cluster (JupyterHub).

:class:`PostgresAuditStore` keeps the same columns and the same sealed payloads as
:class:`~jupyter_guard.audit.store.SQLiteAuditStore`, so the HMAC chain, ``verify``, queries
and exports work unchanged. Select it with::

    c.GuardApp.audit_store_class = "jupyter_guard.audit.postgres.PostgresAuditStore"
    c.PostgresAuditStore.dsn_file = "/run/secrets/audit-dsn"   # or c.PostgresAuditStore.dsn

Many writers, one chain
-----------------------
Several service processes, each with its own :class:`~jupyter_guard.audit.log.AuditLog`, may
append to the same table. Every append runs in one transaction that first locks the table's
*head row* (``<table>_head``, ``SELECT ... FOR UPDATE``): the lock serialises appends across
processes and hosts, and only after holding it does the transaction read the tail, seal the
batch, insert it, move the head row and commit (``synchronous_commit = on``, so the batch is
durable -- flushed to the server's WAL -- before ``append`` returns). Two writers can
therefore never seal two records with the same seq or the same ``prev_mac``: the chain cannot
fork (the primary key on ``seq`` would refuse it anyway).

Truncation, without a local anchor file
---------------------------------------
:meth:`PostgresAuditStore.default_anchor_path` is ``None``: the writers may run on several
hosts, and a per-host anchor file would be missing on every new host. Instead:

* the head row holds the seq and MAC of the newest record, moved in the same transaction as
  every insert. ``append`` refuses (``AuditUnavailable``) when the table's newest record is
  not the one the head row names, and :meth:`~PostgresAuditStore.iter_rows` reports the
  missing records, so ``verify`` says TAMPERED naming the first deleted seq;
* each running ``AuditLog`` refuses to append below the highest seq it has committed.

The head row is in the same database and is not keyed, so someone who can both delete rows
and update the head row (the table owner, a database superuser) can truncate the log
undetected. Give the servers' role only ``SELECT, INSERT`` on the table and ``SELECT, UPDATE``
on the head row, keep the owner role for administrators, and ship exports elsewhere if that
matters (see docs/admin-guide.md).

Connections (why psycopg 3, sync, no pool)
------------------------------------------
psycopg 3 is the maintained PostgreSQL driver, has a binary wheel, exposes server-side
cursors and libpq's conninfo parser (so the password can be kept out of messages), and is
already what the data-source connector tests use. The sync API fits the store: the log calls
it from its one writer thread, and readers from their own threads or processes. A pool would
add a dependency and nothing else: appends are serialised anyway (the head-row lock), so the
store holds one writer connection and one reader connection, each guarded by a lock and
reopened when it broke, and :meth:`iter_rows` opens its own connection for its snapshot (a
whole-chain walk never blocks queries).

The DSN may hold a password (better: a libpq password file, or ``dsn_file`` pointing at a
mounted secret). It never appears in :meth:`describe`, logs or error messages: messages name
the host, port, database, user and table, and any text from the server or libpq is scrubbed
of the password before it is shown.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from traitlets import Bool, Float, Int, Unicode

from ..errors import AuditError, AuditUnavailable
from .chain import COLUMN_FIELDS, VerifyRow, no_gc, record_from_row
from .model import AuditQuery, AuditRecord
from .store import AuditStore, Seal, query_clauses

__all__ = ["PostgresAuditStore"]

_SCHEMA_VERSION = "1"
_INDEXED = ("user", "dataset", "label", "decision", "notebook", "event_type", "action")
_NAME = re.compile(r"^(?:[a-z_][a-z0-9_]{0,40}\.)?[a-z_][a-z0-9_]{0,40}$")
_COLUMNS = ", ".join(f'"{c}"' for c in COLUMN_FIELDS)
# a fixed key for the advisory lock that serialises schema creation between processes
_SCHEMA_LOCK = 0x6A67_6175_6469_74  # "jgaudit"


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency of this store
        raise AuditUnavailable(
            "the PostgreSQL audit store needs psycopg 3: pip install 'jupyter_guard[postgres]'"
        ) from None
    return psycopg


class PostgresAuditStore(AuditStore):
    """The audit log in a PostgreSQL table (see the module docstring)."""

    dsn = Unicode(
        "",
        help="""libpq connection string of the audit database, e.g. "host=db.example.org
        dbname=audit user=jupyter_guard" or postgresql://... Prefer a password file (~/.pgpass,
        PGPASSFILE) or dsn_file over a password here. Never shown in messages.""",
    ).tag(config=True)
    dsn_file = Unicode(
        "",
        help="""File holding the DSN (e.g. a mounted secret); read at start. Give dsn or
        dsn_file, not both.""",
    ).tag(config=True)
    table = Unicode(
        "jupyter_guard_audit",
        help="""Table of the audit records ([schema.]name). The store also keeps <table>_head
        (the newest record, the append lock) and <table>_meta (the schema version).""",
    ).tag(config=True)
    read_only = Bool(
        False,
        help="Open read-only (verify, query, export); the session refuses every write.",
    ).tag(config=True)
    connect_timeout = Int(10, help="Seconds to wait for a connection to the server.").tag(
        config=True
    )
    lock_timeout = Float(
        30.0,
        help="Seconds an append waits for another writer's lock on the head row before it fails.",
    ).tag(config=True)

    def __init__(self, dsn: str | None = None, **kwargs: Any):
        if dsn is not None:
            kwargs["dsn"] = dsn
        super().__init__(**kwargs)
        psycopg = _psycopg()
        if not _NAME.match(self.table):
            raise AuditError(
                f"PostgresAuditStore.table {self.table!r} is not a plain lower-case [schema.]name"
            )
        if self.dsn and self.dsn_file:
            raise AuditError("give c.PostgresAuditStore.dsn or .dsn_file, not both")
        conninfo = self.dsn
        if self.dsn_file:
            try:
                with open(os.path.expanduser(self.dsn_file), encoding="utf-8") as f:
                    conninfo = f.read().strip()
            except OSError as exc:
                raise AuditUnavailable(
                    f"PostgreSQL audit store: cannot read the DSN file {self.dsn_file} "
                    f"({exc.strerror or exc})"
                ) from None
        if not conninfo:
            raise AuditError("the PostgreSQL audit store needs c.PostgresAuditStore.dsn or .dsn_file")
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error:
            # libpq's message may quote the string, password and all
            raise AuditUnavailable(
                "PostgreSQL audit store: the DSN is not a valid libpq connection string"
            ) from None
        self._conninfo = conninfo
        self._password = str(params.get("password") or "")
        self._params = params
        self._where = self._describe_where(params)
        schema, _, name = self.table.rpartition(".")
        ident = psycopg.sql.Identifier
        self._t = ident(schema, name) if schema else ident(name)
        self._head = ident(schema, name + "_head") if schema else ident(name + "_head")
        self._meta = ident(schema, name + "_meta") if schema else ident(name + "_meta")
        self._idx_prefix = name
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._write_conn = None
        self._read_conn = None
        try:
            if not self.read_only:
                self._write_conn = self._connect("opening")
                self._create_schema(self._write_conn)
            self._read_conn = self._connect("opening")
            self._check_schema(self._read_conn)
        except BaseException:
            self._close_conns()
            raise

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _describe_where(params: dict) -> str:
        host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        db = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "?"
        user = params.get("user") or os.environ.get("PGUSER") or "?"
        where = f"{host}:{port}" if not str(host).startswith("/") else f"{host} (socket), port {port}"
        return f"database {db} on {where} as {user}"

    def describe(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"PostgreSQL audit store {self.table} in {self._where}{mode}"

    def default_anchor_path(self) -> str | None:
        """``None``: no local anchor file (the writers may be on several hosts). The head row
        ``<table>_head`` takes its place against truncation (see the module docstring)."""
        return None

    def reader_spec(self) -> tuple[type, dict]:
        traits = {name: getattr(self, name) for name in self.trait_names(config=True)}
        return type(self), {**traits, "read_only": True}

    def _scrub(self, text: str) -> str:
        if self._password:
            for spelling in {self._password, quote(self._password, safe=""), quote(self._password)}:
                if spelling:
                    text = text.replace(spelling, "***")
        return text

    def _unavailable(self, exc: BaseException, doing: str) -> AuditUnavailable:
        detail = " ".join(str(exc).split())
        sqlstate = getattr(exc, "sqlstate", None)
        cause = {
            "25006": "the session is read-only",
            "42501": "permission denied",
            "55P03": f"another writer held the lock for more than {self.lock_timeout:g}s",
            "53100": "the database server's disk is full",
            "57P01": "the server was shut down",
        }.get(sqlstate or "")
        if cause is None and type(exc).__name__ in ("OperationalError", "InterfaceError"):
            cause = "cannot reach or use the server"
        msg = f"{self.describe()} is unavailable ({doing})"
        msg += f": {cause} [{type(exc).__name__}: {detail}]" if cause else f": {type(exc).__name__}: {detail}"
        msg = self._scrub(msg)
        self.log.error("%s", msg)
        return AuditUnavailable(msg)

    def _connect(self, doing: str):
        psycopg = _psycopg()
        options = " ".join(
            filter(None, (str(self._params.get("options") or ""), "-c synchronous_commit=on"))
        )
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        try:
            conn = psycopg.connect(
                self._conninfo,
                connect_timeout=self.connect_timeout,
                application_name="jupyter_guard audit",
                options=options,
            )
        except psycopg.Error as exc:
            raise self._unavailable(exc, doing) from None
        try:
            conn.execute("SET synchronous_commit = on")  # also over a role's or database's default
            if self.read_only:
                conn.execute("SET default_transaction_read_only = on")
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise self._unavailable(exc, doing) from None
        return conn

    def _tables_exist(self, conn) -> bool:
        found = conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s), to_regclass(%s)",
            (self.table, self.table + "_head", self.table + "_meta"),
        ).fetchone()
        return None not in found

    def _create_schema(self, conn) -> None:
        """Create the tables and indexes unless they exist (then nothing is asked of the role
        but SELECT/INSERT on the table and SELECT/UPDATE on the head row)."""
        psycopg = _psycopg()
        S = psycopg.sql.SQL
        try:
            with conn.transaction():
                if self._tables_exist(conn):
                    return
                # CREATE ... IF NOT EXISTS races between processes; one at a time
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(
                    S(
                        """CREATE TABLE IF NOT EXISTS {} (
                        seq BIGINT PRIMARY KEY CHECK (seq > 0),
                        "time" TEXT COLLATE "C" NOT NULL,
                        "event_type" TEXT COLLATE "C" NOT NULL,
                        "user" TEXT COLLATE "C", "action" TEXT COLLATE "C",
                        "dataset" TEXT COLLATE "C", "label" TEXT COLLATE "C",
                        "decision" TEXT COLLATE "C", "notebook" TEXT COLLATE "C",
                        payload BYTEA NOT NULL,
                        prev_mac BYTEA NOT NULL,
                        mac BYTEA NOT NULL
                    )"""
                    ).format(self._t)
                )
                for col in _INDEXED:
                    conn.execute(
                        S("CREATE INDEX IF NOT EXISTS {} ON {} ({}, seq)").format(
                            psycopg.sql.Identifier(f"{self._idx_prefix}_{col}"),
                            self._t,
                            psycopg.sql.Identifier(col),
                        )
                    )
                conn.execute(
                    S('CREATE INDEX IF NOT EXISTS {} ON {} ("time")').format(
                        psycopg.sql.Identifier(f"{self._idx_prefix}_time"), self._t
                    )
                )
                conn.execute(
                    S(
                        "CREATE TABLE IF NOT EXISTS {} (id INT PRIMARY KEY CHECK (id = 1), "
                        "seq BIGINT NOT NULL, mac BYTEA)"
                    ).format(self._head)
                )
                conn.execute(
                    S("INSERT INTO {} VALUES (1, 0, NULL) ON CONFLICT (id) DO NOTHING").format(
                        self._head
                    )
                )
                conn.execute(
                    S("CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, value TEXT NOT NULL)").format(
                        self._meta
                    )
                )
                conn.execute(
                    S("INSERT INTO {} VALUES ('schema_version', %s) ON CONFLICT (name) DO NOTHING").format(
                        self._meta
                    ),
                    (_SCHEMA_VERSION,),
                )
        except psycopg.Error as exc:
            raise self._unavailable(exc, "creating the tables") from None

    def _check_schema(self, conn) -> None:
        psycopg = _psycopg()
        try:
            with conn.transaction():
                if not self._tables_exist(conn):
                    raise AuditUnavailable(
                        f"{self.describe()} is unavailable (opening): the table does not exist "
                        "or is not an audit store (a read-only store never creates it)"
                    )
                row = conn.execute(
                    psycopg.sql.SQL("SELECT value FROM {} WHERE name = 'schema_version'").format(
                        self._meta
                    )
                ).fetchone()
        except psycopg.Error as exc:
            raise self._unavailable(exc, "opening") from None
        if row is None or row[0] != _SCHEMA_VERSION:
            raise AuditUnavailable(
                f"{self.describe()} is unavailable (opening): unknown audit schema version "
                f"{row[0] if row else None}"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise AuditUnavailable(f"{self.describe()} is closed")

    def _live(self, conn, doing: str):
        """``conn`` if it is usable, else a new connection (the old one broke)."""
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover
                pass
        return self._connect(doing)

    # ------------------------------------------------------------------ writing

    def append(self, batch: Sequence[Any], seal: Seal) -> list[AuditRecord]:
        self._check_open()
        if self.read_only:
            raise AuditUnavailable(
                f"{self.describe()} is unavailable (appending): it was opened read-only"
            )
        if not batch:
            return []
        psycopg = _psycopg()
        with self._write_lock:
            for attempt in (1, 2):
                fresh = self._write_conn is None or self._write_conn.closed or self._write_conn.broken
                self._write_conn = conn = self._live(self._write_conn, "appending")
                state = {"committing": False, "sealed": []}
                try:
                    return self._append_once(conn, batch, seal, state)
                except psycopg.Error as exc:
                    sealed = state["sealed"]
                    if state["committing"] and sealed and self._committed_anyway(sealed[-1]):
                        return [s.record for s in sealed]
                    # A connection that died while idle (server restart, idle timeout, failover)
                    # is only noticed on first use; nothing was committed: once more, anew.
                    if attempt == 1 and not fresh and not state["committing"] and conn.broken:
                        self.log.warning("%s: the connection was lost; reconnecting", self.describe())
                        continue
                    raise self._unavailable(exc, "appending") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_once(self, conn, batch: Sequence[Any], seal: Seal, state: dict) -> list[AuditRecord]:
        psycopg = _psycopg()
        S = psycopg.sql.SQL
        sealed = state["sealed"]
        with conn.transaction():
            conn.execute(
                S("SET LOCAL lock_timeout = {}").format(
                    psycopg.sql.Literal(f"{int(self.lock_timeout * 1000)}ms")
                )
            )
            head = conn.execute(
                S("SELECT seq, mac FROM {} WHERE id = 1 FOR UPDATE").format(self._head)
            ).fetchone()
            row = conn.execute(
                S("SELECT seq, mac FROM {} ORDER BY seq DESC LIMIT 1").format(self._t)
            ).fetchone()
            seq, prev = (row[0], bytes(row[1])) if row else (0, None)
            if head is None or head[0] != seq or (head[1] and bytes(head[1]) != prev):
                raise AuditUnavailable(
                    f"{self.describe()} refuses to append: the table ends at record {seq} "
                    f"but its head row names record {head[0] if head else '?'}; records "
                    "were deleted (truncation) or the head row was edited. Run "
                    "`jupyter guard audit verify`."
                )
            for item in batch:
                seq += 1
                s = seal(seq, prev, item)
                prev = s.mac
                sealed.append(s)
            with conn.cursor() as cur:
                cur.executemany(
                    S(
                        "INSERT INTO {} (seq, " + _COLUMNS + ", payload, prev_mac, mac) "
                        "VALUES (" + ", ".join(["%s"] * (len(COLUMN_FIELDS) + 4)) + ")"
                    ).format(self._t),
                    [(s.record.seq, *s.columns, s.payload, s.prev_mac, s.mac) for s in sealed],
                )
            conn.execute(
                S("UPDATE {} SET seq = %s, mac = %s WHERE id = 1").format(self._head),
                (seq, prev),
            )
            state["committing"] = True
        # committed (synchronous_commit = on: flushed on the server)
        return [s.record for s in sealed]

    def _committed_anyway(self, last: Any) -> bool:
        """After the connection failed during COMMIT: did the commit happen? (Then the batch
        is stored, and saying otherwise would make the callers think it was not.)"""
        psycopg = _psycopg()
        try:
            conn = self._connect("checking a commit")
        except AuditUnavailable:
            return False
        try:
            row = conn.execute(
                psycopg.sql.SQL("SELECT mac FROM {} WHERE seq = %s").format(self._t),
                (last.record.seq,),
            ).fetchone()
            return row is not None and bytes(row[0]) == bytes(last.mac)
        except psycopg.Error:
            return False
        finally:
            conn.close()

    # ------------------------------------------------------------------ reading

    def _read(self, doing: str, fn: Callable[[Any], Any]) -> Any:
        self._check_open()
        psycopg = _psycopg()
        with self._read_lock:
            for attempt in (1, 2):
                fresh = self._read_conn is None or self._read_conn.closed or self._read_conn.broken
                self._read_conn = conn = self._live(self._read_conn, doing)
                try:
                    with conn.transaction():
                        return fn(conn)
                except psycopg.Error as exc:
                    if attempt == 1 and not fresh and conn.broken:  # died while idle: once more
                        continue
                    raise self._unavailable(exc, doing) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def tail(self) -> tuple[int, str] | None:
        S = _psycopg().sql.SQL
        row = self._read(
            "reading the tail",
            lambda c: c.execute(
                S("SELECT seq, mac FROM {} ORDER BY seq DESC LIMIT 1").format(self._t)
            ).fetchone(),
        )
        return (row[0], bytes(row[1]).hex()) if row else None

    def count(self) -> int:
        S = _psycopg().sql.SQL
        return self._read(
            "counting",
            lambda c: c.execute(S("SELECT count(*) FROM {}").format(self._t)).fetchone()[0],
        )

    def iter_rows(self, start_seq: int = 1) -> Iterator[VerifyRow]:
        """Every record from ``start_seq``, from one REPEATABLE READ snapshot, through a
        server-side cursor (memory stays flat for any size of log).

        From record 1, when the table ends before the record its head row names, one more row
        is yielded for the first missing record (empty payload and MACs), so verification
        reports the truncation naming that seq.
        """
        self._check_open()
        psycopg = _psycopg()
        S = psycopg.sql.SQL
        doing = "reading for verification"
        conn = self._connect(doing)
        try:
            try:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                with conn.transaction():
                    head = conn.execute(S("SELECT seq FROM {} WHERE id = 1").format(self._head)).fetchone()
                    last = start_seq - 1
                    with conn.cursor(name=f"jg_verify_{secrets.token_hex(4)}") as cur:
                        cur.itersize = 4096
                        cur.execute(
                            S(
                                "SELECT seq, payload, prev_mac, mac, " + _COLUMNS
                                + " FROM {} WHERE seq >= %s ORDER BY seq"
                            ).format(self._t),
                            (start_seq,),
                        )
                        for r in cur:
                            last = r[0]
                            yield VerifyRow(r[0], bytes(r[1]), bytes(r[2]), bytes(r[3]), tuple(r[4:]))
                    if start_seq <= 1 and head is not None and head[0] > last:
                        yield VerifyRow(last + 1, b"", b"", b"", ())
            except psycopg.Error as exc:
                raise self._unavailable(exc, doing) from None
        finally:
            conn.close()

    def query(self, q: AuditQuery) -> list[AuditRecord]:
        psycopg = _psycopg()
        clauses, args = query_clauses(q, "%s")
        text = "SELECT seq, payload, prev_mac, mac FROM {}" + clauses
        args.append(None if q.limit is None else int(q.limit))
        stmt = psycopg.sql.SQL(text).format(self._t)
        rows = self._read("querying", lambda c: c.execute(stmt, args).fetchall())
        with no_gc():
            return [record_from_row(r[0], bytes(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]

    # ------------------------------------------------------------------ lifecycle

    def _close_conns(self) -> None:
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover
                    pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock, self._read_lock:
            self._close_conns()
