"""The audit log end to end on real SQLite files: append, query, export, concurrency, keys."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone

import pytest

import jupyter_guard.audit
from jupyter_guard.audit import (
    AuditEvent,
    AuditLog,
    AuditQuery,
    SQLiteAuditStore,
    export_records,
)
from jupyter_guard.audit.chain import read_anchor
from jupyter_guard.errors import AuditKeyError, AuditUnavailable

KEY = bytes(range(32))
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(jupyter_guard.audit.__file__)))
)


def open_log(path, key=KEY, **kw) -> AuditLog:
    return AuditLog(SQLiteAuditStore(str(path)), key, **kw)


def ev(i: int, **kw) -> AuditEvent:
    base = {
        "event_type": "decision",
        "user": f"user{i % 3}",
        "action": "read",
        "target": f"/data/file{i}.csv",
        "dataset": f"ds{i % 2}",
        "label": "confidential" if i % 2 else "internal",
        "decision": "deny" if i % 5 == 0 else "allow",
        "reasons": ("rule r1", f"label {i % 2}"),
        "notebook": f"nb{i % 4}.ipynb",
        "cell_id": f"cell-{i}",
        "details": {"rows": i, "columns": ["a", "b"]},
    }
    base.update(kw)
    return AuditEvent(**base)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "audit.sqlite"


def test_append_query_round_trip(db):
    with open_log(db) as log:
        recs = [log.append(ev(i)) for i in range(20)]
        assert [r.seq for r in recs] == list(range(1, 21))
        assert recs[0].prev_mac != recs[0].mac and recs[1].prev_mac == recs[0].mac
        back = log.query(AuditQuery(limit=None))
        assert back == recs  # the stored payload rebuilds exactly the sealed record
        assert [r.seq for r in log.query(AuditQuery(user="user1"))] == [2, 5, 8, 11, 14, 17, 20]
        assert {r.event.decision for r in log.query(AuditQuery(decision="deny"))} == {"deny"}
        assert len(log.query(AuditQuery(dataset="ds0", label="internal"))) == 10
        assert [r.seq for r in log.query(AuditQuery(notebook="nb3.ipynb"))] == [4, 8, 12, 16, 20]
        assert log.query(AuditQuery(event_type="export")) == []
        assert len(log.query(AuditQuery(action="read", limit=3))) == 3
        assert log.store.count() == 20
        assert log.store.tail() == (20, recs[-1].mac)
        assert log.verify().ok


def test_query_paging_and_time_range(db):
    with open_log(db) as log:
        recs = [log.append(ev(i)) for i in range(10)]
        page1 = log.query(AuditQuery(limit=4))
        page2 = log.query(AuditQuery(limit=4, after_seq=page1[-1].seq))
        assert [r.seq for r in page1 + page2] == list(range(1, 9))
        desc = log.query(AuditQuery(limit=3, descending=True))
        assert [r.seq for r in desc] == [10, 9, 8]
        more = log.query(AuditQuery(limit=3, descending=True, after_seq=8))
        assert [r.seq for r in more] == [7, 6, 5]
        mid = recs[4].time
        since = log.query(AuditQuery(since=mid))
        assert since[0].seq == 5
        until = log.query(AuditQuery(until=datetime.fromisoformat(mid.replace("Z", "+00:00"))))
        assert until[-1].seq == 4
        future = datetime.now(timezone.utc) + timedelta(days=1)
        assert log.query(AuditQuery(since=future)) == []
        assert len(log.query(AuditQuery(until=future.isoformat()))) == 10
        with pytest.raises(ValueError):
            log.query(AuditQuery(since="yesterday"))


def test_record_to_dict_is_flat_and_json_ready(db):
    with open_log(db) as log:
        rec = log.append(ev(1, purpose="research", justification="ticket 7"))
    d = rec.to_dict()
    assert d["seq"] == 1 and d["time"].endswith("Z") and len(d["time"]) == 27
    assert d["user"] == "user1" and d["reasons"] == ["rule r1", "label 1"]
    assert d["details"] == {"rows": 1, "columns": ["a", "b"]}
    assert d["prev_mac"] == rec.prev_mac and d["mac"] == rec.mac
    json.dumps(d)


def test_export_jsonl_and_csv(db):
    with open_log(db) as log:
        log.append(ev(1, notebook="=HYPERLINK(1)"))
        log.append(ev(2))
        recs = log.query(AuditQuery())
    out = io.StringIO()
    assert export_records(iter(recs), "jsonl", out) == 2
    lines = out.getvalue().splitlines()
    assert [json.loads(x) for x in lines] == [r.to_dict() for r in recs]

    out = io.StringIO()
    assert export_records(iter(recs), "csv", out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["seq"] == "1" and rows[0]["mac"] == recs[0].mac
    assert rows[0]["notebook"] == "'=HYPERLINK(1)"  # not a formula in a spreadsheet
    assert json.loads(rows[1]["reasons"]) == ["rule r1", "label 0"]
    assert rows[1]["purpose"] == ""
    with pytest.raises(ValueError, match="unknown export format"):
        export_records(iter(recs), "xml", io.StringIO())


def test_export_streams(db):
    """export_records consumes its input lazily: a generator is written as it goes."""
    out = io.StringIO()
    seen = []

    def gen():
        with open_log(db) as log:
            for i in range(3):
                rec = log.append(ev(i))
                seen.append(out.tell())
                yield rec

    export_records(gen(), "jsonl", out)
    assert seen[0] == 0 and seen[1] > 0 and seen[2] > seen[1]


def test_reopen_continues_the_chain(db):
    with open_log(db) as log:
        for i in range(5):
            log.append(ev(i))
    with open_log(db) as log:
        log.check_key()
        assert log.append(ev(9)).seq == 6
        assert log.verify().ok and log.verify().head_seq == 6


def test_async_append_does_not_block_the_loop(db):
    log = open_log(db)

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        recs = await asyncio.gather(*(log.append_async(ev(i)) for i in range(200)))
        stop.set()
        await t
        return recs, ticks

    recs, ticks = asyncio.run(main())
    log.close()
    assert sorted(r.seq for r in recs) == list(range(1, 201))
    assert ticks > 0


def test_concurrent_threads_one_unbroken_chain(db):
    log = open_log(db)
    n_threads, per = 8, 150
    results: list = []
    lock = threading.Lock()

    def work(t):
        mine = [log.append(ev(t * 1000 + i, user=f"t{t}")) for i in range(per)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = log.verify()
    log.close()
    assert res.ok and res.checked == n_threads * per, res
    assert sorted(r.seq for r in results) == list(range(1, n_threads * per + 1))
    assert res.head_seq == n_threads * per


CHILD = textwrap.dedent(
    """
    import sys, threading
    sys.path.insert(0, {repo!r})
    from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
    log = AuditLog(SQLiteAuditStore({db!r}, busy_timeout=60), bytes(range(32)))
    def work(t):
        for i in range({per}):
            log.append(AuditEvent("decision", user="p{tag}-%d" % t, details={{"i": i}}))
    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    log.close()
    print("done")
    """
)


@pytest.mark.parametrize("fresh", [False, True], ids=["existing-store", "fresh-store"])
def test_two_processes_one_unbroken_chain(db, fresh):
    if not fresh:
        with open_log(db) as log:
            log.append(ev(0))
    per = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD.format(repo=REPO, db=str(db), per=per, tag=tag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in "ab"
    ]
    outputs = [p.communicate(timeout=240) for p in procs]  # wait for both before asserting
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert out.strip() == "done"
    with open_log(db) as log:
        res = log.verify()
        total = (0 if fresh else 1) + 2 * 4 * per
        assert res.ok and res.checked == total, res
        assert res.head_seq == total
        users = {
            r.event.user.split("-")[0]
            for r in log.query(AuditQuery(user=None, limit=None))
            if r.event.user.startswith("p")
        }
        assert users == {"pa", "pb"}


def test_close_drains_and_is_idempotent(db):
    log = open_log(db)
    futs = [log._submit(jupyter_guard.audit.chain.prepare_event(ev(i))) for i in range(50)]
    log.close()
    log.close()
    assert sorted(f.result(timeout=5).seq for f in futs) == list(range(1, 51))
    with pytest.raises(AuditUnavailable, match="closed"):
        log.append(ev(1))


def test_bad_event_fails_only_its_caller(db):
    with open_log(db) as log:
        with pytest.raises(ValueError, match="not JSON"):
            log.append(AuditEvent("decision", details={"x": object()}))
        with pytest.raises(ValueError):
            AuditEvent("")
        with pytest.raises(TypeError):
            AuditEvent("decision", reasons="one string")
        assert log.append(ev(1)).seq == 1


def test_failed_batch_fails_every_caller_and_stores_nothing(db, tmp_path):
    import sqlite3

    log = AuditLog(SQLiteAuditStore(str(db), busy_timeout=0.2), KEY)
    log.append(ev(0))
    blocker = sqlite3.connect(str(db), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    errors: list = []

    def work(i):
        try:
            log.append(ev(i))
        except AuditUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert len(errors) == 8  # nobody was told their record was stored
    assert all(str(db) in str(e) and "locked" in str(e) for e in errors)
    assert log.store.count() == 1
    assert log.append(ev(9)).seq == 2  # the log recovers once the lock is gone
    assert log.verify().ok
    log.close()


def test_group_commit_off_still_durable_and_chained(db):
    with open_log(db, group_commit=False) as log:
        recs = [log.append(ev(i)) for i in range(10)]
        assert [r.seq for r in recs] == list(range(1, 11))
        assert asyncio.run(log.append_async(ev(11))).seq == 11
        assert log.verify().ok


def test_check_key_wrong_key(db):
    with open_log(db) as log:
        log.append(ev(1))
    with open_log(db, key=b"k" * 32, anchor_path=False) as other:
        with pytest.raises(AuditKeyError, match="does not match the log at .*audit.sqlite"):
            other.check_key()
        res = other.verify()
        assert not res.ok and res.first_bad_seq == 1 and "key" in res.problem


def test_empty_log(db):
    with open_log(db) as log:
        log.check_key()
        res = log.verify()
        assert res.ok and res.checked == 0
        assert log.query(AuditQuery()) == []
        assert log.store.tail() is None and log.store.count() == 0


def test_anchor_file_is_private_and_follows_the_head(db):
    with open_log(db) as log:
        for i in range(3):
            log.append(ev(i))
        head = str(db) + ".head"
        assert oct(os.stat(head).st_mode & 0o777) == "0o600"
        a = read_anchor(head, KEY)
        assert a.valid and a.seq == 3 and a.mac == log.store.tail()[1]
