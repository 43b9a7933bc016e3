"""Where sealed audit records live.

:class:`AuditStore` is the one interface every store implements (SQLite here, PostgreSQL for
a JupyterHub cluster). A store does not know the key: the log hands it a ``seal`` callable, and
the store calls it inside its write transaction, after reading the tail, so that the chain stays
unbroken even when several processes append to the same store.

:class:`SQLiteAuditStore` is the single-machine default. Never put it on NFS or another network
file system: SQLite's locking is not reliable there, and concurrent writers could fork the
chain. The store refuses a path on a network file system it can recognise.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from traitlets import Bool, Float, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import AuditUnavailable
from .chain import COLUMN_FIELDS, Sealed, VerifyRow, no_gc, record_from_row
from .model import AuditQuery, AuditRecord, parse_time

__all__ = ["NETWORK_FILESYSTEMS", "AuditStore", "SQLiteAuditStore"]

Seal = Callable[[int, "str | bytes | None", Any], Sealed]


class AuditStore(LoggingConfigurable):
    """The interface of an audit store. Subclasses must be safe to use from several threads.

    Every method raises :class:`~jupyter_guard.errors.AuditUnavailable` (naming the store and
    the cause) when the store cannot be read or written. ``append`` is all-or-nothing: when it
    raises, none of the batch was stored.
    """

    def append(self, batch: Sequence[Any], seal: Seal) -> list[AuditRecord]:
        """Store ``batch`` atomically at the end of the chain and return the sealed records.

        In one transaction that excludes other writers: read the tail ``(seq, mac)``, call
        ``seal(seq, prev_mac, item)`` for each item in order (``prev_mac`` is ``None`` for
        record 1, else the previous record's MAC as raw bytes or hex), insert, commit.
        """
        raise NotImplementedError

    def tail(self) -> tuple[int, str] | None:
        """``(seq, mac_hex)`` of the newest record, ``None`` when empty."""
        raise NotImplementedError

    def iter_rows(self, start_seq: int = 1) -> Iterator[VerifyRow]:
        """Every record from ``start_seq`` in seq order, from one consistent snapshot."""
        raise NotImplementedError

    def query(self, q: AuditQuery) -> list[AuditRecord]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the store is, for messages (never credentials)."""
        raise NotImplementedError

    def default_anchor_path(self) -> str | None:
        """Where the head anchor goes by default; ``None`` when the store has no local file."""
        return None

    def reader_spec(self) -> tuple[type, dict] | None:
        """``(class, kwargs)`` that open this store read-only in another process (the stewards'
        reader, :mod:`.readers`); ``None`` when it cannot be reopened there."""
        return None


NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "afs", "glusterfs", "fuse.glusterfs"}
)

_SCHEMA_VERSION = "1"
_COLUMNS = ", ".join(f'"{c}"' for c in COLUMN_FIELDS)
_INDEXED = ("user", "dataset", "label", "decision", "notebook", "event_type")
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        "time" TEXT NOT NULL,
        "event_type" TEXT NOT NULL,
        "user" TEXT, "action" TEXT, "dataset" TEXT, "label" TEXT, "decision" TEXT,
        "notebook" TEXT,
        payload BLOB NOT NULL,
        prev_mac BLOB NOT NULL,
        mac BLOB NOT NULL
    )""",
    *(f'CREATE INDEX IF NOT EXISTS audit_log_{c} ON audit_log("{c}", seq)' for c in _INDEXED),
    'CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log("time")',
    "CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"INSERT OR IGNORE INTO audit_meta VALUES ('schema_version', '{_SCHEMA_VERSION}')",
]
_INSERT = (
    f"INSERT INTO audit_log (seq, {_COLUMNS}, payload, prev_mac, mac) "
    f"VALUES ({', '.join('?' * (len(COLUMN_FIELDS) + 4))})"
)
_QUERY_FILTERS = ("user", "dataset", "label", "decision", "notebook", "event_type", "action")

_CAUSES = {
    "SQLITE_BUSY": "it is locked by another connection or process",
    "SQLITE_LOCKED": "it is locked by another connection",
    "SQLITE_READONLY": "it is read-only",
    "SQLITE_READONLY_DBMOVED": "the database file was deleted or moved while open",
    "SQLITE_FULL": "the disk (or the database's size limit) is full",
    "SQLITE_NOTADB": "the file is not an SQLite database (corrupt, or another kind of file)",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_CANTOPEN": "the file cannot be opened (missing directory, or no permission)",
    "SQLITE_IOERR": "a disk I/O error (is the disk full or gone?)",
    "SQLITE_PERM": "permission denied",
    "SQLITE_AUTH": "permission denied",
}


def _mount_fstype(path: str) -> str | None:
    """The file-system type of the mount holding ``path`` (Linux ``/proc/mounts``), if known."""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, fstype = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, parts[2]
    return fstype


def query_clauses(q: AuditQuery, mark: str) -> tuple[str, list[Any]]:
    """`` WHERE ... ORDER BY ... LIMIT <mark>`` for ``q`` and its arguments (without the limit's:
    each store spells "no limit" its own way); ``mark`` is the driver's placeholder."""
    where: list[str] = []
    args: list[Any] = []
    for name in _QUERY_FILTERS:
        value = getattr(q, name)
        if value is not None:
            where.append(f'"{name}" = {mark}')
            args.append(value)
    if q.since is not None:
        where.append(f'"time" >= {mark}')
        args.append(parse_time(q.since))
    if q.until is not None:
        where.append(f'"time" < {mark}')
        args.append(parse_time(q.until))
    if q.after_seq is not None:
        where.append(f"seq {'<' if q.descending else '>'} {mark}")
        args.append(int(q.after_seq))
    sql = (" WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY seq DESC" if q.descending else " ORDER BY seq"
    return sql + f" LIMIT {mark}", args


class SQLiteAuditStore(AuditStore):
    """The audit log in one SQLite file on a local disk (WAL, ``synchronous=FULL``).

    Durable: a commit is fsynced before ``append`` returns. Several processes may append to
    the same file: each batch runs in ``BEGIN IMMEDIATE``, which reads the tail and writes under
    SQLite's write lock. Readers never block writers (WAL).
    """

    path = Unicode(help="Path of the SQLite audit database (local disk, never NFS).").tag(
        config=True
    )
    busy_timeout = Float(
        10.0, help="Seconds to wait for another writer's lock before the append fails."
    ).tag(config=True)
    allow_network_filesystem = Bool(
        False,
        help="Allow the database on a network file system (NFS, SMB). Unsafe: SQLite locking "
        "is unreliable there and the chain can fork. Use the PostgreSQL store instead.",
    ).tag(config=True)
    cache_mib = Float(
        16.0, help="SQLite page cache per connection, in MiB (the store holds two or three)."
    ).tag(config=True)
    read_only = Bool(
        False,
        help="Open the database read-only (for verifying or querying an archived copy).",
    ).tag(config=True)

    def __init__(self, path: str | None = None, **kwargs: Any):
        if path is not None:
            kwargs["path"] = path
        super().__init__(**kwargs)
        if not self.path:
            raise ValueError("SQLiteAuditStore needs a path")
        self.path = os.path.abspath(os.path.expanduser(self.path))
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._identity: tuple[int, int] | None = None
        self._check_filesystem()
        self._write_conn = self._open(writer=True) if not self.read_only else None
        try:
            self._read_conn = self._open(writer=False)
            self._identity = self._file_identity()
        except BaseException:
            if self._write_conn is not None:
                self._write_conn.close()
            raise

    # ------------------------------------------------------------------ plumbing

    def describe(self) -> str:
        return f"SQLite audit store {self.path}"

    def default_anchor_path(self) -> str | None:
        return self.path + ".head"

    def reader_spec(self) -> tuple[type, dict]:
        traits = {name: getattr(self, name) for name in self.trait_names(config=True)}
        return type(self), {**traits, "read_only": True}

    def _unavailable(self, exc: BaseException, doing: str) -> AuditUnavailable:
        if isinstance(exc, OSError):
            cause, detail = exc.strerror or str(exc), ""
        else:
            name = getattr(exc, "sqlite_errorname", "") or ""
            base = "_".join(name.split("_")[:2])
            cause = _CAUSES.get(name) or _CAUSES.get(base)
            detail = str(exc)
            if base == "SQLITE_BUSY" or "locked" in detail:
                detail = f"{detail}; waited {self.busy_timeout:g}s"
        msg = f"audit store {self.path} is unavailable ({doing}): {cause or detail}"
        if cause and detail:
            msg = f"{msg} [{detail}]"
        self.log.error("%s", msg)
        return AuditUnavailable(msg)

    def _check_filesystem(self) -> None:
        fstype = _mount_fstype(os.path.realpath(os.path.dirname(self.path)))
        if fstype in NETWORK_FILESYSTEMS and not self.allow_network_filesystem:
            raise AuditUnavailable(
                f"audit store {self.path} is on a network file system ({fstype}); SQLite is not "
                "safe there. Put it on a local disk, or use a PostgreSQL audit store."
            )

    def _open(self, *, writer: bool) -> sqlite3.Connection:
        conn = None
        try:
            if self.read_only:
                uri = pathlib.Path(self.path).as_uri() + "?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                if not writer and not os.path.exists(self.path):
                    raise sqlite3.OperationalError("unable to open database file")
                if writer:
                    self._create_private()
                conn = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute(f"PRAGMA cache_size = -{int(self.cache_mib * 1024)}")
            if writer:
                self._retry_busy(conn, self._init_writer)
            else:
                conn.execute("PRAGMA query_only = ON")
            self._retry_busy(conn, self._check_schema)
            return conn
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if "no such table" in str(exc):
                raise AuditUnavailable(
                    f"audit store {self.path} is unavailable (opening): it is an SQLite "
                    "database but not an audit store"
                ) from None
            raise self._unavailable(exc, "opening") from None

    def _retry_busy(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], None]
    ) -> None:
        """Run ``fn``, retrying while SQLite says busy, up to ``busy_timeout``.

        Needed when several processes create the same store at once: switching a new file to
        WAL can fail busy at once, without SQLite's busy handler waiting.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                fn(conn)
                return
            except sqlite3.OperationalError as exc:
                busy = (getattr(exc, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
                if not (busy or "locked" in str(exc)) or time.monotonic() >= deadline:
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                time.sleep(0.01)

    def _init_writer(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        if not self._has_schema(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _has_schema(conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('audit_log', 'audit_meta')"
        ).fetchone()
        return row[0] == 2

    @staticmethod
    def _check_schema(conn: sqlite3.Connection) -> None:
        version = conn.execute(
            "SELECT value FROM audit_meta WHERE name = 'schema_version'"
        ).fetchone()
        if version is None or version[0] != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"unknown audit schema version {version[0] if version else None}"
            )

    def _create_private(self) -> None:
        """Create a new database file 0600 (SQLite gives -wal and -shm the same mode)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError:
            return  # let sqlite3 report it with its own cause
        os.close(fd)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unavailable(exc, "checking the file") from None
        return (st.st_dev, st.st_ino)

    def _check_identity(self, doing: str) -> None:
        now = self._file_identity()
        if now is None:
            raise self._unavailable(
                sqlite3.OperationalError("the database file was deleted while open"), doing
            )
        if now != self._identity:
            raise self._unavailable(
                sqlite3.OperationalError("the database file was replaced while open"), doing
            )

    def _check_open(self) -> None:
        if self._closed:
            raise AuditUnavailable(f"audit store {self.path} is closed")

    # ------------------------------------------------------------------ writing

    def append(self, batch: Sequence[Any], seal: Seal) -> list[AuditRecord]:
        self._check_open()
        if self._write_conn is None:
            raise AuditUnavailable(
                f"audit store {self.path} is unavailable (appending): it was opened read-only"
            )
        if not batch:
            return []
        with self._write_lock:
            conn = self._write_conn
            self._check_identity("appending")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(
                        "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1"
                    ).fetchone()
                    seq, prev = (row[0], row[1]) if row else (0, None)
                    sealed = []
                    for item in batch:
                        seq += 1
                        s = seal(seq, prev, item)
                        prev = s.mac
                        sealed.append(s)
                    conn.executemany(
                        _INSERT,
                        [(s.record.seq, *s.columns, s.payload, s.prev_mac, s.mac) for s in sealed],
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    raise
            except sqlite3.Error as exc:
                raise self._unavailable(exc, "appending") from None
            # Committed. If the file was deleted meanwhile, the records went to a dead inode:
            # the caller must learn that they are not in the store at `path`.
            self._check_identity("appending")
            return [s.record for s in sealed]

    # ------------------------------------------------------------------ reading

    def _read(self, doing: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._check_open()
        with self._read_lock:
            self._check_identity(doing)
            try:
                return fn(self._read_conn)
            except sqlite3.Error as exc:
                raise self._unavailable(exc, doing) from None

    def tail(self) -> tuple[int, str] | None:
        row = self._read(
            "reading the tail",
            lambda c: c.execute(
                "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone(),
        )
        return (row[0], bytes(row[1]).hex()) if row else None

    def count(self) -> int:
        return self._read(
            "counting", lambda c: c.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        )

    def iter_rows(self, start_seq: int = 1) -> Iterator[VerifyRow]:
        self._check_open()
        self._check_identity("reading for verification")
        conn = self._open(writer=False)
        try:
            try:
                conn.execute("BEGIN")  # one snapshot for the whole walk
                cur = conn.execute(
                    f"SELECT seq, payload, prev_mac, mac, {_COLUMNS} FROM audit_log "
                    "WHERE seq >= ? ORDER BY seq",
                    (start_seq,),
                )
                while True:
                    rows = cur.fetchmany(4096)
                    if not rows:
                        break
                    for r in rows:
                        yield VerifyRow(r[0], r[1], r[2], r[3], r[4:])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._unavailable(exc, "reading for verification") from None
        finally:
            conn.close()

    def query(self, q: AuditQuery) -> list[AuditRecord]:
        clauses, args = query_clauses(q, "?")
        sql = "SELECT seq, payload, prev_mac, mac FROM audit_log" + clauses
        args.append(-1 if q.limit is None else int(q.limit))
        rows = self._read("querying", lambda c: c.execute(sql, args).fetchall())
        with no_gc():
            return [record_from_row(*r) for r in rows]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock, self._read_lock:
            for conn in (self._write_conn, self._read_conn):
                if conn is not None:
                    try:
                        conn.close()
                    except sqlite3.Error:  # pragma: no cover
                        pass
