"""A store that cannot write or read raises AuditUnavailable naming the path; nothing is lost
silently: an append that raised stored nothing, and one that returned is in the store.

Tests run as root in CI, and root ignores file modes. The read-only case therefore runs the
writer in a child process that drops to an unprivileged user (uid 65534, "nobody"), so the
kernel really refuses the writes; when the suite runs as an ordinary user, chmod alone does it.
A full disk is made real with RLIMIT_FSIZE in a child process (writes past the limit fail with
EFBIG, as on a full disk; the limit binds root too). Neither needs a mount or a test hook.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

import jupyter_guard.audit
from jupyter_guard.audit import AuditEvent, AuditLog, AuditQuery, SQLiteAuditStore
from jupyter_guard.audit.store import _mount_fstype
from jupyter_guard.errors import AuditUnavailable

KEY = bytes(range(32))
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(jupyter_guard.audit.__file__)))
)


def ev(i=0):
    return AuditEvent("decision", user="u", dataset="d", details={"i": i})


def make_log(path, n=3, **store_kw) -> None:
    with AuditLog(SQLiteAuditStore(str(path), **store_kw), KEY) as log:
        for i in range(n):
            log.append(ev(i))


def run_child(script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": REPO},
        **kw,
    )


# ------------------------------------------------------------------ read-only


@pytest.fixture
def world_dir():
    """A directory outside root's private pytest tmp, reachable by an unprivileged user."""
    d = tempfile.mkdtemp(prefix="audit_ro_")
    os.chmod(d, 0o755)
    yield d
    os.chmod(d, 0o755)
    shutil.rmtree(d, ignore_errors=True)


def append_as_unprivileged_user(db: str) -> dict:
    """Open the store and append in a forked child that dropped root (uid/gid 65534).

    A fork, not a new interpreter: the interpreter may live where that user cannot read it.
    """
    import warnings

    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                log = AuditLog(SQLiteAuditStore(db, busy_timeout=1), KEY)
                try:
                    out = {"stored": log.append(ev(9)).seq}
                finally:
                    log.close()
            except AuditUnavailable as exc:
                out = {"error": str(exc)}
            os.write(w, json.dumps(out).encode())
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(w, json.dumps({"crash": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_read_only_store_refuses_appends(world_dir):
    db = os.path.join(world_dir, "audit.sqlite")
    make_log(db)
    for name in os.listdir(world_dir):
        os.chmod(os.path.join(world_dir, name), 0o444)
    os.chmod(world_dir, 0o555)
    out = append_as_unprivileged_user(db)
    assert "stored" not in out and "crash" not in out, out
    assert db in out["error"], out
    os.chmod(world_dir, 0o755)
    os.chmod(db, 0o644)
    with AuditLog(SQLiteAuditStore(db), KEY) as log:
        assert log.store.count() == 3 and log.verify().ok


def test_read_only_mode_for_archives(tmp_path):
    """read_only=True (e.g. verifying an archived copy) reads, and refuses appends clearly."""
    db = tmp_path / "audit.sqlite"
    make_log(db)
    store = SQLiteAuditStore(str(db), read_only=True)
    assert store.count() == 3
    with AuditLog(store, KEY) as log:
        assert log.verify().ok
        with pytest.raises(AuditUnavailable, match=f"{db}.*read-only"):
            log.append(ev())


# ------------------------------------------------------------------ deleted, corrupt, locked


def test_deleted_while_open(tmp_path):
    db = tmp_path / "audit.sqlite"
    log = AuditLog(SQLiteAuditStore(str(db)), KEY)
    log.append(ev())
    os.remove(db)
    with pytest.raises(AuditUnavailable, match=f"{db}.*deleted"):
        log.append(ev(1))
    with pytest.raises(AuditUnavailable, match=f"{db}.*deleted"):
        log.query(AuditQuery())
    log.close()


def test_replaced_while_open(tmp_path):
    db = tmp_path / "audit.sqlite"
    log = AuditLog(SQLiteAuditStore(str(db)), KEY)
    log.append(ev())
    os.rename(db, tmp_path / "moved.sqlite")
    shutil.copy(tmp_path / "moved.sqlite", db)  # another file now sits at the path
    with pytest.raises(AuditUnavailable, match=f"{db}.*replaced"):
        log.append(ev(1))
    log.close()


def test_garbage_file(tmp_path):
    db = tmp_path / "audit.sqlite"
    db.write_bytes(os.urandom(16384))
    with pytest.raises(AuditUnavailable, match=f"{db}.*not an SQLite database"):
        SQLiteAuditStore(str(db))


def test_corrupt_pages(tmp_path):
    """A real audit database whose pages were overwritten: never a silent success."""
    db = tmp_path / "audit.sqlite"
    make_log(db, n=200)
    size = os.path.getsize(db)
    with open(db, "r+b") as f:  # keep the header page, smash the rest
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    try:
        store = SQLiteAuditStore(str(db))
    except AuditUnavailable as exc:
        assert str(db) in str(exc)
        return
    with AuditLog(store, KEY) as log, pytest.raises(AuditUnavailable, match=str(db)):
        log.append(ev())
        log.verify()


def test_another_sqlite_file_that_is_not_an_audit_store(tmp_path):
    db = tmp_path / "other.sqlite"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    c.execute("INSERT INTO audit_meta VALUES ('schema_version', '99')")
    c.commit()
    c.close()
    with pytest.raises(AuditUnavailable, match=f"{db}.*schema"):
        SQLiteAuditStore(str(db))


def test_locked_beyond_timeout(tmp_path):
    db = tmp_path / "audit.sqlite"
    make_log(db)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    log = AuditLog(SQLiteAuditStore(str(db), busy_timeout=0.3), KEY)
    try:
        with pytest.raises(AuditUnavailable, match=f"{db}.*locked.*waited 0.3s"):
            log.append(ev())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.append(ev()).seq == 4
    log.close()


def test_missing_directory(tmp_path):
    db = tmp_path / "nope" / "audit.sqlite"
    with pytest.raises(AuditUnavailable, match=f"{db}.*cannot be opened"):
        SQLiteAuditStore(str(db))


# ------------------------------------------------------------------ disk full


CHILD_FULL = """
    import json, resource, signal, sys
    from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
    from jupyter_guard.errors import AuditUnavailable
    path, limit = sys.argv[1], int(sys.argv[2])
    log = AuditLog(SQLiteAuditStore(path), bytes(range(32)))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    stored = []
    error = None
    for i in range(10000):
        try:
            stored.append(log.append(AuditEvent("decision", details={"pad": "x" * 2000, "i": i})).seq)
        except AuditUnavailable as exc:
            error = str(exc)
            break
    log.close()
    print(json.dumps({"stored": stored, "error": error}))
"""


def test_disk_full(tmp_path):
    db = tmp_path / "audit.sqlite"
    make_log(db, n=1)
    limit = os.path.getsize(db) + 256 * 1024  # the WAL grows past this quickly
    proc = run_child(CHILD_FULL.replace("sys.argv[1], int(sys.argv[2])", f"{str(db)!r}, {limit}"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["error"] and str(db) in out["error"], out
    assert "full" in out["error"] or "I/O" in out["error"], out
    stored = out["stored"]
    assert stored and stored == list(range(2, 2 + len(stored)))
    with AuditLog(SQLiteAuditStore(str(db)), KEY) as log:
        # exactly what was acknowledged is there: the failed append left nothing behind
        assert log.store.count() == 1 + len(stored)
        res = log.verify()
        assert res.ok, res
        assert log.append(ev()).seq == 2 + len(stored)


# ------------------------------------------------------------------ network file systems


def test_mount_table_lookup():
    assert _mount_fstype("/") is not None
    assert _mount_fstype(os.path.realpath(tempfile.gettempdir())) is not None


def test_network_filesystem_refused(tmp_path, monkeypatch):
    import jupyter_guard.audit.store as store_mod

    monkeypatch.setattr(store_mod, "_mount_fstype", lambda path: "nfs4")
    with pytest.raises(AuditUnavailable, match="network file system .*nfs4"):
        SQLiteAuditStore(str(tmp_path / "a.sqlite"))
    SQLiteAuditStore(str(tmp_path / "b.sqlite"), allow_network_filesystem=True).close()


def test_anchor_cannot_be_written(tmp_path):
    """Records are durable but the anchor is not: the caller learns it, and why."""
    db = tmp_path / "audit.sqlite"
    head = tmp_path / "audit.head"
    with AuditLog(SQLiteAuditStore(str(db)), KEY, anchor_path=str(head)) as log:
        log.append(ev())
        os.remove(head)
        os.mkdir(head)  # the anchor path can no longer be written
        log._head_checked = True  # (already checked at the first append)
        with pytest.raises(AuditUnavailable, match=r"records 2\.\.2 were stored .* head anchor"):
            log.append(ev())


def test_store_file_modes(tmp_path):
    db = tmp_path / "audit.sqlite"
    with AuditLog(SQLiteAuditStore(str(db)), KEY) as log:
        log.append(ev())
        assert os.path.exists(str(db) + "-wal")
        for suffix in ("", "-wal", "-shm", ".head"):
            assert stat.S_IMODE(os.stat(str(db) + suffix).st_mode) == 0o600, suffix
