"""Durable audit appends: the central PostgreSQL store side by side with SQLite, in one run.

    python benchmarks/bench_audit_pg.py [--events 20000] [--tasks 256] [--dsn "host=127.0.0.1 user=postgres"]

Each store gets the server's write path (``AuditLog.append_async`` from ``--tasks`` concurrent
coroutines, group commit), the same realistic events (bench_audit's generator), and is verified
afterwards. PostgreSQL is also run with two writer *processes* on one table (how several guard
service processes share one chain): events/s over both, and the chain checked unforked.
A throwaway database is created on the server and dropped at the end.
Writes benchmarks/results/audit_pg.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_audit  # noqa: E402

from jupyter_guard.audit import AuditLog, SQLiteAuditStore  # noqa: E402

RESULTS = HERE / "results" / "audit_pg.json"


def _pg_store(dsn: str, table: str):
    from jupyter_guard.audit.postgres import PostgresAuditStore

    return PostgresAuditStore(dsn=dsn, table=table)


def run_log(make_store, events: int, tasks: int, seed: int = 7) -> dict:
    log = AuditLog(make_store(), bench_audit.KEY, anchor_path=False)
    rng = random.Random(seed)
    batch = [bench_audit.make_event(rng) for _ in range(events)]
    dt = bench_audit.append_concurrently(log, batch, tasks)
    log.close()
    return {"events": events, "seconds": round(dt, 3), "events_per_s": round(events / dt)}


def _writer(dsn: str, table: str, events: int, tasks: int, seed: int, out) -> None:
    out.put(run_log(lambda: _pg_store(dsn, table), events, tasks, seed))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--tasks", type=int, default=256)
    ap.add_argument("--dsn", default=os.environ.get("JUPYTER_GUARD_TEST_PG", "host=127.0.0.1 port=5432 user=postgres"))
    args = ap.parse_args(argv)
    import psycopg
    from psycopg import sql

    db = f"jg_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.dsn + " dbname=postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    dsn = f"{args.dsn} dbname={db}"
    result: dict = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                "cpus": os.cpu_count()}, "tasks": args.tasks}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result["sqlite"] = run_log(lambda: SQLiteAuditStore(path=os.path.join(tmp, "a.sqlite")),
                                       args.events, args.tasks)
        result["postgres_1_process"] = run_log(lambda: _pg_store(dsn, "one"), args.events, args.tasks)
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(dsn, "two", args.events // 2, args.tasks // 2, s, out))
                 for s in (1, 2)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        parts = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - t0
        check = AuditLog(_pg_store(dsn, "two"), bench_audit.KEY, anchor_path=False)
        verified = check.verify()
        check.close()
        assert verified.ok and verified.checked == sum(p["events"] for p in parts), verified
        result["postgres_2_processes"] = {
            "events": sum(p["events"] for p in parts), "per_process": parts,
            "events_per_s": round(sum(p["events"] for p in parts) / max(p["seconds"] for p in parts)),
            "wall_seconds_including_start": round(wall, 3), "chain_verified": verified.ok,
        }
    finally:
        with psycopg.connect(args.dsn + " dbname=postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
    result["pg_over_sqlite"] = round(result["postgres_1_process"]["events_per_s"] / result["sqlite"]["events_per_s"], 2)
    result["two_over_one_process"] = round(result["postgres_2_processes"]["events_per_s"]
                                           / result["postgres_1_process"]["events_per_s"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
