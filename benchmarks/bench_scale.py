"""Column rules at scale: pandas in one process vs Dask on a LocalCluster, side by side in one run.

    python benchmarks/bench_scale.py [--rows 2000000] [--parts 8] [--workers 2]

The same CSV files (``--parts`` of them, ``--rows`` in all: id, name, ssn, email, phone,
amount, a short free-text note) and the same catalog column rules: ``ssn`` mask, ``email`` and
``name`` hash, ``phone`` replace. Pandas reads every file and redacts the concatenated frame
with ``Redactor.redact_frame`` (the kernel path); Dask reads the files on a
``distributed.LocalCluster`` (``--workers`` processes, one thread each) and applies
``PartitionRedaction`` per partition (the path the kernel guard builds for ``dd.read_csv``),
keeping the result on the workers (``persist``) as a cluster job would; it is then gathered,
untimed, and checked equal to pandas' row for row (pseudonyms included). Reported: seconds
(median of 3), rows/s and the ratio. Free-text scanning is measured separately (``--scan``),
since its cost is Presidio's. Writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results" / "scale.json"
KEY = b"0123456789abcdef0123456789abcdef"
RULES = [
    {"name": "ssn", "entity": "US_SSN", "rule": "mask"},
    {"name": "email", "entity": "EMAIL_ADDRESS", "rule": "hash"},
    {"name": "name", "entity": "PERSON", "rule": "hash"},
    {"name": "phone", "entity": "PHONE_NUMBER", "rule": "replace"},
]
SCAN_RULE = {"name": "note", "entity": "FREE_TEXT", "rule": "scan"}


def write_parts(directory: Path, rows: int, parts: int) -> list[str]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    per = rows // parts
    paths = []
    for p in range(parts):
        ids = np.arange(p * per, (p + 1) * per)
        frame = pd.DataFrame({
            "id": ids,
            "name": [f"Person {i % 50_000}" for i in ids],
            "ssn": [f"{100 + i % 800:03d}-{10 + i % 89:02d}-{i % 10_000:04d}" for i in ids],
            "email": [f"user{i % 200_000}@example.org" for i in ids],
            "phone": [f"(212) 555-{i % 10_000:04d}" for i in ids],
            "amount": rng.integers(1, 10_000, len(ids)),
            "note": [f"visit {i % 97} ok" if i % 5 else f"call back at 212-555-{i % 10_000:04d}" for i in ids],
        })
        path = directory / f"part-{p:03d}.csv"
        frame.to_csv(path, index=False)
        paths.append(str(path))
    return paths


def pandas_run(paths: list[str], rules: list[dict]):
    import pandas as pd

    from jupyter_guard.redaction import Redactor
    from jupyter_guard.redaction.detector import Detector

    detector = Detector() if any(r["rule"] == "scan" for r in rules) else None
    frame = pd.concat([pd.read_csv(p, dtype=str) for p in paths], ignore_index=True)
    out, _ = Redactor(detector, pseudonym_key=KEY).redact_frame(frame, rules)
    return out


def dask_frame(paths: list[str], rules: list[dict]):
    import dask.dataframe as dd

    from jupyter_guard.redaction.frame import PartitionRedaction

    ddf = dd.read_csv(paths, dtype=str, blocksize=None)  # one partition per file
    redact = PartitionRedaction(rules, pseudonym_key=KEY, ner_model=None)
    return ddf.map_partitions(redact, meta=redact(ddf._meta))


def dask_run(paths: list[str], rules: list[dict]):
    """Read and redact on the workers, the result kept there (``persist``), as a cluster job does;
    gathering every row into one process is a cost of the check, not of the job."""
    from distributed import wait

    out = dask_frame(paths, rules).persist()
    wait(out)
    return out


def timed(fn, *args, rounds: int = 3):
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scan", action="store_true", help="add the free-text column (Presidio) to the rules")
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    rules = RULES + ([SCAN_RULE] if args.scan else [])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        paths = write_parts(Path(tmp), args.rows, args.parts)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            dask_run(paths[:1], rules)  # warm the workers (imports, Presidio when scanning)
            d_all = []
            for _ in range(3):
                t0 = time.perf_counter()
                persisted = dask_run(paths, rules)
                d_all.append(time.perf_counter() - t0)
                d_out = persisted.compute().reset_index(drop=True)  # the check, untimed
                client.cancel(persisted)  # released: the next round computes everything again
                del persisted
                time.sleep(0.5)
            d_med = statistics.median(d_all)
        p_med, p_all, p_out = timed(pandas_run, paths, rules)
    same = d_out.astype(object).values.tolist() == p_out.astype(object).values.tolist()
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "rows": args.rows, "parts": args.parts, "workers": args.workers, "rules": [r["rule"] for r in rules],
        "pandas_s": round(p_med, 3), "pandas_all_s": [round(t, 3) for t in p_all],
        "dask_s": round(d_med, 3), "dask_all_s": [round(t, 3) for t in d_all],
        "pandas_rows_per_s": round(args.rows / p_med), "dask_rows_per_s": round(args.rows / d_med),
        "dask_over_pandas": round(p_med / d_med, 2),
        "identical_row_for_row": same,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    name = RESULTS.with_name("scale_scan.json" if args.scan else "scale.json")
    name.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
