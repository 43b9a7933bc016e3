"""Decision latency with a 10,000-dataset catalog of globbed locations.

Target (issue 2): a decision = resolve + policy + durable audit append, p95 under 2 ms.
Measured side by side in one run: resolve alone, resolve + policy, and the full decision
with the SQLite store (WAL, synchronous=FULL) behind group commit.

    python benchmarks/bench_decide.py [--datasets 10000] [--decisions 3000]

Prints a table and writes benchmarks/results/decide.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jupyter_guard.audit import AuditLog, SQLiteAuditStore  # noqa: E402
from jupyter_guard.governor import Governor, load_governance  # noqa: E402

LABELS = ("public", "internal", "confidential", "restricted")


def write_catalog(directory: Path, n: int) -> None:
    lines = ["datasets:"]
    for i in range(n):
        label = LABELS[i % 4]
        lines += [
            f"  - name: ds{i}",
            f"    label: {label}",
            "    steward: Steward <steward@example.org>",
            "    locations:",
            f"      - /lake/project{i % 200}/ds{i}/**/*.parquet",
            f"      - /lake/project{i % 200}/ds{i}-*.csv",
            f"      - {{uri: 's3://bucket{i % 50}/ds{i}/*'}}",
            f"      - {{table: 'warehouse.schema{i % 100}.t{i}_*'}}",
            "    columns: {email: {entity: EMAIL_ADDRESS, rule: hash}}",
        ]
    (directory / "datasets.yaml").write_text("\n".join(lines) + "\n")
    (directory / "policy.yaml").write_text(
        """\
roles: {researcher: {users: ["*"]}}
rules:
  - {name: public, labels: [public], effect: allow}
  - {name: internal, labels: [internal], effect: allow}
  - {name: confidential, labels: [confidential], effect: redact}
  - {name: restricted, labels: [restricted], effect: deny}
"""
    )


def targets(n_datasets: int, count: int, rng: random.Random) -> list[tuple[str, str | None]]:
    out = []
    for _ in range(count):
        i = rng.randrange(n_datasets)
        kind = rng.randrange(4)
        if kind == 0:
            out.append((f"/lake/project{i % 200}/ds{i}/year=2026/month=11/part-{rng.randrange(999)}.parquet", None))
        elif kind == 1:
            out.append((f"/lake/project{i % 200}/ds{i}-2026-{rng.randrange(12):02d}.csv", None))
        elif kind == 2:
            out.append((f"s3://bucket{i % 50}/ds{i}/file{rng.randrange(999)}.json", None))
        else:
            out.append((f"warehouse.schema{i % 100}.t{i}_{rng.randrange(99)}", "table"))
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731 - ms
    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(s) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=3_000)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cat").mkdir()
        write_catalog(tmp / "cat", args.datasets)
        t0 = time.perf_counter()
        gov = load_governance(tmp / "cat", tmp)
        load_s = time.perf_counter() - t0
        log = AuditLog(SQLiteAuditStore(path=str(tmp / "audit.sqlite")), os.urandom(32))
        governor = Governor(gov, log)
        who = governor.principal("rita")
        work = targets(args.datasets, args.decisions, rng)
        # warm-up: first lookups compile the glob buckets
        for target, kind in work[:200]:
            governor.evaluate(who, target, kind=kind)

        resolve, evaluate, decide = [], [], []
        for target, kind in work:
            t = time.perf_counter()
            res = gov.catalog.resolve(target, kind)
            resolve.append(time.perf_counter() - t)
            assert res.dataset is not None, target
            t = time.perf_counter()
            governor.evaluate(who, target, kind=kind)
            evaluate.append(time.perf_counter() - t)
            t = time.perf_counter()
            decision, record = governor.decide(who, target, kind=kind)
            decide.append(time.perf_counter() - t)
            assert record is not None
        log.close()

    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "datasets": args.datasets,
        "locations": args.datasets * 4,
        "decisions": args.decisions,
        "catalog_load_s": round(load_s, 2),
        "resolve": percentiles(resolve),
        "resolve_policy": percentiles(evaluate),
        "decision_with_durable_audit": percentiles(decide),
    }
    print(f"catalog: {args.datasets} datasets, {args.datasets * 4} glob locations, loaded in {load_s:.2f} s")
    print(f"{'step':<32}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name in ("resolve", "resolve_policy", "decision_with_durable_audit"):
        r = result[name]
        print(f"{name:<32}{r['p50_ms']:>10.3f}{r['p95_ms']:>10.3f}{r['p99_ms']:>10.3f}")
    p95 = result["decision_with_durable_audit"]["p95_ms"]
    print(f"target p95 < 2 ms: {'met' if p95 < 2 else 'MISSED'} ({p95:.3f} ms)")
    out = Path(__file__).parent / "results" / "decide.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
