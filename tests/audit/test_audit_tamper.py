"""Tampering with a real SQLite audit store is detected, naming the first bad record.

The tamperer edits the database file with plain sqlite3, as someone with file access but
without the key would.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
from jupyter_guard.audit.chain import COLUMN_FIELDS, write_anchor
from jupyter_guard.errors import AuditUnavailable

KEY = b"0123456789abcdef0123456789abcdef"
N = 8


def build(path: str, events: list[AuditEvent]) -> None:
    with AuditLog(SQLiteAuditStore(path), KEY) as log:
        for e in events:
            log.append(e)


def verify(path: str, key: bytes = KEY):
    with AuditLog(SQLiteAuditStore(path), key) as log:
        return log.verify()


def default_events(n: int = N) -> list[AuditEvent]:
    return [
        AuditEvent(
            "decision",
            user=f"u{i % 3}",
            dataset=f"d{i}",
            label="secret",
            decision="allow",
            notebook="nb.ipynb",
            reasons=(f"r{i}",),
            details={"i": i},
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------ tampering operations


def _conn(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _row(c, seq):
    return c.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone()


def _cols(c) -> list[str]:
    return [r[1] for r in c.execute("PRAGMA table_info(audit_log)")]


def edit_payload(path, seq, pos=None, byte=None):
    c = _conn(path)
    payload = bytes(c.execute("SELECT payload FROM audit_log WHERE seq=?", (seq,)).fetchone()[0])
    pos = len(payload) // 2 if pos is None else pos % len(payload)
    new = byte if byte is not None else (payload[pos] ^ 0x01)
    if new == payload[pos]:
        new = (new + 1) % 256
    payload = payload[:pos] + bytes([new]) + payload[pos + 1 :]
    c.execute("UPDATE audit_log SET payload=? WHERE seq=?", (payload, seq))
    c.close()


def edit_column(path, seq, column="user", value="mallory"):
    c = _conn(path)
    old = c.execute(f'SELECT "{column}" FROM audit_log WHERE seq=?', (seq,)).fetchone()[0]
    if old == value or (value is None and column in ("time", "event_type")):  # NOT NULL
        value = (value or "") + "x"
    c.execute(f'UPDATE audit_log SET "{column}"=? WHERE seq=?', (value, seq))
    c.close()


def edit_mac(path, seq, which="mac"):
    c = _conn(path)
    mac = bytes(c.execute(f"SELECT {which} FROM audit_log WHERE seq=?", (seq,)).fetchone()[0])
    c.execute(f"UPDATE audit_log SET {which}=? WHERE seq=?", (bytes([mac[0] ^ 1]) + mac[1:], seq))
    c.close()


def delete(path, seq, renumber=False):
    c = _conn(path)
    c.execute("DELETE FROM audit_log WHERE seq=?", (seq,))
    if renumber:  # a careful tamperer closes the gap
        for (s,) in c.execute(
            "SELECT seq FROM audit_log WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall():
            c.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (s - 1, s))
    c.close()


def truncate(path, keep):
    c = _conn(path)
    c.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
    c.close()


def insert(path, at, copy_of=1):
    """Insert a record at position `at`, shifting later ones up (their seq +1)."""
    c = _conn(path)
    cols = _cols(c)
    donor = list(_row(c, copy_of))
    for (s,) in c.execute(
        "SELECT seq FROM audit_log WHERE seq >= ? ORDER BY seq DESC", (at,)
    ).fetchall():
        c.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (s + 1, s))
    donor[cols.index("seq")] = at
    c.execute(f"INSERT INTO audit_log VALUES ({','.join('?' * len(cols))})", donor)
    c.close()


def swap(path, a, b):
    c = _conn(path)
    cols = [x for x in _cols(c) if x != "seq"]
    ra, rb = _row(c, a), _row(c, b)
    names = _cols(c)
    va = [ra[names.index(x)] for x in cols]
    vb = [rb[names.index(x)] for x in cols]
    sets = ", ".join(f'"{x}"=?' for x in cols)
    c.execute(f"UPDATE audit_log SET {sets} WHERE seq=?", (*vb, a))
    c.execute(f"UPDATE audit_log SET {sets} WHERE seq=?", (*va, b))
    c.close()


# ------------------------------------------------------------------ each case by hand


@pytest.fixture
def log_path(tmp_path):
    path = str(tmp_path / "audit.sqlite")
    build(path, default_events())
    assert verify(path).ok
    return path


@pytest.mark.parametrize("seq", [1, 4, N])
def test_edited_payload(log_path, seq):
    edit_payload(log_path, seq)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == seq and "MAC" in res.problem
    assert res.checked == seq - 1


def test_payload_rewritten_with_sql_replace(log_path):
    """replace() in SQL also turns the BLOB into TEXT: still named, never a crash."""
    c = _conn(log_path)
    c.execute("UPDATE audit_log SET payload = replace(payload, 'u1', 'u9') WHERE seq = 2")
    c.close()
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == 2 and "MAC" in res.problem


@pytest.mark.parametrize("column", COLUMN_FIELDS)
def test_edited_index_column(log_path, column):
    edit_column(log_path, 3, column, "2000-01-01T00:00:00.000000Z" if column == "time" else "x")
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == 3
    assert f"its {column} column differs" in res.problem


def test_edited_index_column_to_null(log_path):
    edit_column(log_path, 5, "label", None)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == 5 and "label" in res.problem


@pytest.mark.parametrize("which", ["mac", "prev_mac"])
def test_edited_mac(log_path, which):
    edit_mac(log_path, 6, which)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == 6


@pytest.mark.parametrize("seq", [1, 4, N - 1])
def test_deleted_middle_record(log_path, seq):
    delete(log_path, seq)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == seq and "missing" in res.problem


@pytest.mark.parametrize("seq", [1, 4, N - 1])
def test_deleted_and_renumbered(log_path, seq):
    delete(log_path, seq, renumber=True)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == seq


@pytest.mark.parametrize("keep", [0, 3, N - 1])
def test_deleted_last_records_detected_by_anchor(log_path, keep):
    truncate(log_path, keep)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == keep + 1
    assert "truncation" in res.problem and res.head_seq == N


def test_truncated_log_refuses_to_append(log_path):
    truncate(log_path, 5)
    with AuditLog(SQLiteAuditStore(log_path), KEY) as log:
        with pytest.raises(AuditUnavailable, match="truncation"):
            log.append(AuditEvent("decision"))
        assert log.store.count() == 5


@pytest.mark.parametrize("at", [1, 4, N + 1])
def test_inserted_record(log_path, at):
    insert(log_path, at, copy_of=2)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == at


@pytest.mark.parametrize(("a", "b"), [(1, 2), (3, 7), (N - 1, N)])
def test_swapped_records(log_path, a, b):
    swap(log_path, a, b)
    res = verify(log_path)
    assert not res.ok and res.first_bad_seq == a


def test_wrong_key(log_path):
    res = verify(log_path, key=b"another key, 32 bytes long......")
    assert not res.ok
    # the anchor is checked first: it does not verify with this key either
    assert "key" in res.problem
    with AuditLog(
        SQLiteAuditStore(log_path), b"another key, 32 bytes long......", anchor_path=False
    ) as log:
        res = log.verify()
        assert not res.ok and res.first_bad_seq == 1 and "genesis" in res.problem


def test_altered_or_missing_anchor(log_path):
    head = log_path + ".head"
    with open(head, "r+b") as f:
        raw = bytearray(f.read())
        for slot in (0, 4096):  # change a digit of the MAC in both slots
            raw[slot + 40] = ord("0") if raw[slot + 40] != ord("0") else ord("1")
        f.seek(0)
        f.write(raw)
    res = verify(log_path)
    assert not res.ok and "anchor" in res.problem
    os.remove(head)
    res = verify(log_path)
    assert not res.ok and "missing" in res.problem
    with AuditLog(SQLiteAuditStore(log_path), KEY) as log:
        with pytest.raises(AuditUnavailable, match="anchor .* is missing"):
            log.append(AuditEvent("decision"))
        assert log.reanchor().ok  # an administrator accepts the log as it is
        assert log.append(AuditEvent("decision")).seq == N + 1
        assert log.verify().ok


def test_torn_anchor_slot_is_not_a_false_alarm(log_path):
    """A crash in the middle of an anchor update spoils one slot; the other one holds."""
    head = log_path + ".head"
    with open(head, "r+b") as f:
        raw = f.read()
    newest = 0 if b'"seq":%d' % N in raw[:4096] else 1
    with open(head, "r+b") as f:
        f.seek(newest * 4096 + 40)
        f.write(b"\x00garbage")
    res = verify(log_path)
    assert res.ok and res.head_seq == N - 1


def test_anchor_never_moves_backwards(tmp_path):
    head = str(tmp_path / "h")
    assert write_anchor(head, KEY, 5, "aa" * 32)
    assert not write_anchor(head, KEY, 3, "bb" * 32)
    assert write_anchor(head, KEY, 6, "cc" * 32)


# ------------------------------------------------------------------ property: always detected

OPS = [
    "payload",
    "column",
    "mac",
    "prev_mac",
    "delete",
    "delete_renumber",
    "truncate",
    "insert",
    "swap",
]

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
events = st.builds(
    AuditEvent,
    event_type=st.sampled_from(["decision", "export", "cell_execution"]),
    user=st.none() | texts,
    dataset=st.none() | texts,
    label=st.none() | st.sampled_from(["public", "secret"]),
    decision=st.none() | st.sampled_from(["allow", "deny", "redact"]),
    notebook=st.none() | texts,
    reasons=st.lists(texts, max_size=2).map(tuple),
    details=st.dictionaries(texts, st.integers() | texts, max_size=2),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evs=st.lists(events, min_size=1, max_size=6),
    op=st.sampled_from(OPS),
    data=st.data(),
)
def test_random_tampering_is_always_detected(evs, op, data):
    n = len(evs)
    d = tempfile.mkdtemp(prefix="tamper_")
    try:
        path = os.path.join(d, "audit.sqlite")
        build(path, evs)
        pos = data.draw(st.integers(1, n), label="position")
        expected = pos
        if op == "payload":
            edit_payload(
                path, pos, data.draw(st.integers(0, 10_000)), data.draw(st.integers(0, 255))
            )
        elif op == "column":
            column = data.draw(st.sampled_from(COLUMN_FIELDS))
            edit_column(path, pos, column, data.draw(texts | st.none()))
        elif op in ("mac", "prev_mac"):
            edit_mac(path, pos, op)
        elif op == "delete":
            delete(path, pos)
        elif op == "delete_renumber":
            delete(path, pos, renumber=True)
        elif op == "truncate":
            truncate(path, pos - 1)
        elif op == "insert":
            at = data.draw(st.integers(1, n + 1), label="at")
            donor = data.draw(st.integers(1, n), label="copy_of")
            insert(path, at, copy_of=donor)
            # a copy of record k put at position k is the genuine record there: the shifted
            # original after it is the first one out of place
            expected = at + 1 if donor == at else at
        elif op == "swap":
            if n < 2:
                return
            other = data.draw(st.integers(1, n).filter(lambda x: x != pos), label="other")
            swap(path, pos, other)
            expected = min(pos, other)
        res = verify(path)
        assert not res.ok, (op, pos, res)
        assert res.first_bad_seq == expected, (op, pos, res)
    finally:
        shutil.rmtree(d, ignore_errors=True)
