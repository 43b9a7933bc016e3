"""The stewards' reader: pages, exports and verification in a reader process of their own.

Real SQLite logs, real spawned reader processes. The effect on governed reads under load is
measured by benchmarks/bench_steward_impact.py (figures in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest

from jupyter_guard.audit import AuditLog, AuditQuery, SQLiteAuditStore
from jupyter_guard.audit.export import RecordWriter
from jupyter_guard.audit.readers import StewardReader

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_audit  # noqa: E402  (the benchmark's realistic record generator)

sys.path.pop(0)

RECORDS = 60_000


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("readers") / "audit.sqlite")
    bench_audit.build_big_log(path, RECORDS)
    return path


@pytest.fixture(params=[True, False], ids=["processes", "threads"])
def reader(request, big_log):
    log = AuditLog(SQLiteAuditStore(path=big_log), bench_audit.KEY)
    r = StewardReader(log, processes=request.param)
    assert r.in_processes is request.param
    yield r
    r.close()
    log.close()


async def test_pages_and_exports_are_what_the_log_holds(reader):
    log = reader.audit
    query = AuditQuery(user="user007", limit=50, descending=True)
    page = json.loads(await reader.page(query))
    expected = [r.to_dict() for r in log.query(query)]
    assert page["records"] == expected and page["next"] == expected[-1]["seq"]
    # an export in two chunks is byte for byte the writer's output in one go
    q = AuditQuery(dataset="dataset_3", limit=100)
    first, n1, last = await reader.export_chunk(q, "csv", True)
    q.after_seq = last
    second, n2, _ = await reader.export_chunk(q, "csv", False)
    whole = io.StringIO()
    RecordWriter("csv", whole).write(log.query(AuditQuery(dataset="dataset_3", limit=n1 + n2)))
    assert first + second == whole.getvalue() and n1 == 100


async def test_pages_never_wait_for_a_verification_and_verifications_share_one_walk(reader):
    await reader.page(AuditQuery(limit=1))  # start the readers: a spawn costs a moment
    await reader.verify()
    t0 = time.perf_counter()
    verifies = [asyncio.ensure_future(reader.verify()) for _ in range(3)]
    await asyncio.sleep(0)
    page_times = []
    for i in range(5):
        t = time.perf_counter()
        page = json.loads(await reader.page(AuditQuery(user=f"user{i:03d}", limit=200)))
        page_times.append(time.perf_counter() - t)
        assert len(page["records"]) == 200
    pages_done = time.perf_counter() - t0
    results = await asyncio.gather(*verifies)
    verified = time.perf_counter() - t0
    assert results[0].ok and results[0].checked == RECORDS
    assert results[0] is results[1] is results[2]  # one walk answered all three
    if reader.in_processes:
        assert pages_done < verified, (pages_done, verified, page_times)


async def test_a_reader_process_runs_apart_at_a_lower_priority(big_log):
    log = AuditLog(SQLiteAuditStore(path=big_log), bench_audit.KEY)
    reader = StewardReader(log, processes=True, nice=5)
    try:
        await reader.page(AuditQuery(limit=1))
        [pool] = reader._pools.values()
        [pid] = list(pool._processes)
        assert pid != os.getpid()
        with open(f"/proc/{pid}/stat") as f:
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
        assert nice == os.nice(0) + 5
    finally:
        reader.close()
        log.close()


async def test_a_reader_that_dies_is_replaced(big_log):
    log = AuditLog(SQLiteAuditStore(path=big_log), bench_audit.KEY)
    reader = StewardReader(log, processes=True)
    try:
        await reader.page(AuditQuery(limit=1))
        [pid] = list(next(iter(reader._pools.values()))._processes)
        os.kill(pid, 9)
        await asyncio.sleep(0.5)
        page = json.loads(await reader.page(AuditQuery(limit=3)))
        assert len(page["records"]) == 3
    finally:
        reader.close()
        log.close()


async def test_a_reader_kept_busy_paces_itself_and_an_idle_one_never_waits(big_log):
    """Stewards paging flat out get at most ``duty`` of a CPU per reader; a first request is
    answered at once. Compared side by side: the same back-to-back jobs unpaced and paced."""
    log = AuditLog(SQLiteAuditStore(path=big_log), bench_audit.KEY)
    query = AuditQuery(limit=5000)
    walls = {}
    try:
        for duty in (1.0, 0.25):
            reader = StewardReader(log, processes=True, duty=duty)
            try:
                await reader.page(AuditQuery(limit=1))  # spawn it
                await asyncio.sleep(1)  # idle: whatever that first job earned is spent
                t0 = time.perf_counter()
                for _ in range(4):
                    await reader.page(query)
                walls[duty] = time.perf_counter() - t0
            finally:
                reader.close()
    finally:
        log.close()
    assert walls[0.25] > 2 * walls[1.0], walls
    with pytest.raises(ValueError):
        StewardReader(log, processes=True, duty=0)
