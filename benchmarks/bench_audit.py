"""Audit log benchmarks: durable append throughput, verify, per-user query.

    python benchmarks/bench_audit.py                 # full run (1,000,000-event log)
    python benchmarks/bench_audit.py --events 100000 # quicker

Prints a table and writes benchmarks/results/audit.json. Everything is measured in one run,
side by side, on real SQLite files (WAL, synchronous=FULL) in a temporary directory on the
local disk (``--dir`` to choose it). The machine may be shared and noisy: compare the rows of
one run (ratios), not runs on different days.

Targets: >= 20,000 durable events/s with concurrent writers; verify of 1,000,000 events
< 10 s; one user's events (of ~100 users) out of 1,000,000 in < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jupyter_guard.audit import AuditEvent, AuditLog, AuditQuery, SQLiteAuditStore
from jupyter_guard.audit.chain import Sealer, prepare_event, write_anchor

KEY = bytes(range(32))
USERS = [f"user{i:03d}" for i in range(100)]
LABELS = ["public", "internal", "confidential", "restricted"]
DECISIONS = ["allow", "allow", "allow", "redact", "deny"]


def make_event(rng: random.Random) -> AuditEvent:
    """A realistic decision record (~500 bytes of payload), no data values."""
    user = rng.choice(USERS)
    ds = f"dataset_{rng.randrange(200)}"
    return AuditEvent(
        event_type="decision",
        user=user,
        action="read",
        target=f"/home/{user}/data/{ds}/part-{rng.randrange(50):04d}.csv",
        dataset=ds,
        label=rng.choice(LABELS),
        decision=rng.choice(DECISIONS),
        reasons=("label confidential requires role analyst", "purpose research"),
        purpose="research",
        kernel_id=str(uuid.UUID(int=rng.getrandbits(128))),
        session_id=str(uuid.UUID(int=rng.getrandbits(128))),
        notebook=f"work/{user}/analysis-{rng.randrange(20)}.ipynb",
        cell_id=str(uuid.UUID(int=rng.getrandbits(128))),
        msg_id=str(uuid.UUID(int=rng.getrandbits(128))),
        details={"columns": ["age", "zip", "diagnosis"], "rows": rng.randrange(10**6)},
    )


def new_log(dirname: str, name: str, **kw) -> AuditLog:
    return AuditLog(SQLiteAuditStore(os.path.join(dirname, name)), KEY, **kw)


def bench_threads(dirname: str, name: str, threads: int, per_thread: int, **kw) -> dict:
    log = new_log(dirname, name, **kw)
    events = [
        [make_event(random.Random(t * 1_000_003 + i)) for i in range(per_thread)]
        for t in range(threads)
    ]
    barrier = threading.Barrier(threads + 1)

    def work(evs):
        barrier.wait()
        for e in evs:
            log.append(e)

    ts = [threading.Thread(target=work, args=(evs,)) for evs in events]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    n = threads * per_thread
    ok = log.verify()
    log.close()
    assert ok.ok and ok.checked == n, ok
    return {"events": n, "seconds": dt, "events_per_s": n / dt}


def append_concurrently(log: AuditLog, events: list, tasks: int) -> float:
    """Seconds for ``tasks`` coroutines to append ``events`` through the server's write path."""

    async def main():
        it = iter(events)

        async def worker():
            for e in it:
                await log.append_async(e)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return time.perf_counter() - t0

    return asyncio.run(main())


def bench_async(dirname: str, name: str, tasks: int, total: int) -> dict:
    log = new_log(dirname, name)
    rng = random.Random(7)
    events = [make_event(rng) for _ in range(total)]
    dt = append_concurrently(log, events, tasks)
    ok = log.verify()
    log.close()
    assert ok.ok and ok.checked == total, ok
    return {"events": total, "seconds": dt, "events_per_s": total / dt}


def build_big_log(path: str, n: int) -> dict:
    """Fill a store with n events through the real sealing path, in large batches."""
    store = SQLiteAuditStore(path)
    sealer = Sealer(KEY)
    rng = random.Random(42)
    t0 = time.perf_counter()
    batch_size = 20_000
    done = 0
    last = None
    while done < n:
        k = min(batch_size, n - done)
        batch = []
        for _ in range(k):
            e = make_event(rng)
            batch.append(prepare_event(e))
        last = store.append(batch, sealer)[-1]
        done += k
    dt = time.perf_counter() - t0
    write_anchor(path + ".head", KEY, last.seq, last.mac)
    store.close()
    return {"events": n, "seconds": dt, "events_per_s": n / dt, "db_bytes": os.path.getsize(path)}


def bench_verify(path: str, n: int) -> dict:
    log = AuditLog(SQLiteAuditStore(path), KEY)
    t0 = time.perf_counter()
    res = log.verify()
    dt = time.perf_counter() - t0
    log.close()
    assert res.ok and res.checked == n, res
    return {"events": n, "seconds": dt, "events_per_s": n / dt}


def bench_query(path: str, repeats: int = 7) -> dict:
    """All events of one user (of 100) with no limit, a different user each time."""
    store = SQLiteAuditStore(path)
    times = []
    count = 0
    for i in range(repeats):
        user = USERS[(i * 37) % len(USERS)]
        gc.collect()  # each query starts from the same state, not the previous one's garbage
        t0 = time.perf_counter()
        recs = store.query(AuditQuery(user=user, limit=None))
        times.append(time.perf_counter() - t0)
        count = len(recs)
        assert all(r.event.user == user for r in recs)
        del recs
    # the first page a UI would ask for
    t0 = time.perf_counter()
    page = store.query(AuditQuery(user=USERS[5], limit=100, descending=True))
    page_dt = time.perf_counter() - t0
    store.close()
    return {
        "records_returned": count,
        "median_seconds": statistics.median(times),
        "max_seconds": max(times),
        "min_seconds": min(times),
        "page_of_100_seconds": page_dt,
        "page_len": len(page),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="size of the big log")
    ap.add_argument("--per-thread", type=int, default=3000, help="appends per writer thread")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the append benchmarks")
    ap.add_argument("--dir", default=None, help="directory for the databases (local disk)")
    ap.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "audit.json"),
    )
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench_audit_", dir=args.dir)
    results: dict = {
        "machine": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "targets": {
            "durable_events_per_s": 20_000,
            "verify_1m_seconds": 10,
            "query_one_user_of_100_in_1m_seconds": 0.1,
        },
    }
    rows = []
    try:
        pt = args.per_thread
        configs = [
            (
                "append_1_writer_no_group_commit",
                "append, 1 writer, no group commit",
                lambda i: bench_threads(work, f"d1_{i}.db", 1, pt // 2, group_commit=False),
            ),
            (
                "append_1_writer_group_commit",
                "append, 1 writer, group commit",
                lambda i: bench_threads(work, f"g1_{i}.db", 1, pt // 2),
            ),
            (
                "append_8_threads_no_group_commit",
                "append, 8 threads, no group commit",
                lambda i: bench_threads(work, f"d8_{i}.db", 8, pt // 4, group_commit=False),
            ),
            (
                "append_8_threads_group_commit",
                "append, 8 threads, group commit",
                lambda i: bench_threads(work, f"g8_{i}.db", 8, pt),
            ),
            (
                "append_32_threads_group_commit",
                "append, 32 threads, group commit",
                lambda i: bench_threads(work, f"g32_{i}.db", 32, pt // 4),
            ),
            (
                "append_async_256_tasks_group_commit",
                "append_async, 256 tasks on 1 loop",
                lambda i: bench_async(work, f"a256_{i}.db", 256, 8 * pt),
            ),
        ]
        # Interleaved rounds: a noisy neighbour hits every configuration alike.
        runs: dict = {key: [] for key, _, _ in configs}
        for i in range(args.rounds):
            for key, _, fn in configs:
                runs[key].append(fn(i))
        for key, label, _ in configs:
            rates = sorted(r["events_per_s"] for r in runs[key])
            results[key] = {
                "events": runs[key][0]["events"],
                "rounds": len(rates),
                "events_per_s": statistics.median(rates),
                "min_events_per_s": rates[0],
                "max_events_per_s": rates[-1],
            }
            rows.append((label + " (median)", results[key]["events_per_s"], "events/s"))

        big = os.path.join(work, "big.db")
        r = build_big_log(big, args.events)
        results["bulk_load"] = r
        rows.append((f"bulk load {args.events:,} (batches of 20k)", r["events_per_s"], "events/s"))
        rows.append(("  database size", r["db_bytes"] / 2**20, "MiB"))

        r = bench_verify(big, args.events)
        results["verify"] = r
        rows.append((f"verify {args.events:,} events", r["seconds"], "s"))

        r = bench_query(big)
        results["query_one_user"] = r
        rows.append(
            (
                f"query 1 user of 100 ({r['records_returned']:,} records), median",
                r["median_seconds"] * 1000,
                "ms",
            )
        )
        rows.append(("  same, fastest of 7", r["min_seconds"] * 1000, "ms"))
        rows.append(("  same, slowest of 7", r["max_seconds"] * 1000, "ms"))
        rows.append(("  newest 100 of one user", r["page_of_100_seconds"] * 1000, "ms"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = results["append_1_writer_no_group_commit"]["events_per_s"]
    results["ratios_vs_1_writer_no_group_commit"] = {
        k: v["events_per_s"] / base
        for k, v in results.items()
        if k.startswith("append_") and isinstance(v, dict)
    }
    for key in (
        "append_8_threads_group_commit",
        "append_32_threads_group_commit",
        "append_async_256_tasks_group_commit",
    ):
        rows.append(
            (
                f"ratio {key[len('append_') :]} / 1 writer no group commit",
                results["ratios_vs_1_writer_no_group_commit"][key],
                "x",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark'.ljust(width)}  {'value':>12}  unit")
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value:>12,.1f}  {unit}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
