"""Column rules at scale: pandas in one process vs Dask on a LocalCluster vs Spark local[N], side by side in one run.

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


def spark_session(workers: int):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(f"local[{workers}]").appName("bench-scale")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(workers))
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
            .config("spark.driver.memory", "3g")  # the check gathers every row into the driver
            .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())


def spark_frame(spark, paths: list[str], rules: list[dict]):
    """The step the kernel guard adds to spark.read: PartitionRedaction per Arrow batch (mapInPandas)."""
    from pyspark.sql.types import StringType, StructField, StructType

    from jupyter_guard.redaction.frame import PartitionRedaction

    sdf = spark.read.csv(paths, header=True)  # every column a string, as dtype=str for pandas
    redact = PartitionRedaction(rules, pseudonym_key=KEY, ner_model=None)
    schema = StructType([StructField(f.name, StringType(), True) for f in sdf.schema.fields])

    def batches(frames, redact=redact):
        for frame in frames:
            yield redact(frame)

    return sdf.mapInPandas(batches, schema)


def spark_run(spark, paths: list[str], rules: list[dict]) -> None:
    spark_frame(spark, paths, rules).write.format("noop").mode("overwrite").save()  # computed, not kept


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
    ap.add_argument("--no-spark", action="store_true", help="pandas and Dask only")
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
        spark_result = None
        if not args.no_spark:
            spark = spark_session(args.workers)
            try:
                spark_run(spark, paths[:1], rules)  # warm: the JVM, the Python workers
                s_med, s_all, _ = timed(spark_run, spark, paths, rules)
                got = spark_frame(spark, paths, rules).toPandas()
                got = got.assign(_id=got["id"].astype(int)).sort_values("_id").drop(columns="_id").reset_index(drop=True)
            finally:
                spark.stop()
            spark_result = {"spark_s": round(s_med, 3), "spark_all_s": [round(t, 3) for t in s_all],
                            "spark_rows_per_s": round(args.rows / s_med), "spark_over_pandas": round(p_med / s_med, 2),
                            "spark_identical_row_for_row":
                                got.astype(object).values.tolist() == p_out.astype(object).values.tolist()}
    same = d_out.astype(object).values.tolist() == p_out.astype(object).values.tolist()
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "rows": args.rows, "parts": args.parts, "workers": args.workers, "rules": [r["rule"] for r in rules],
        "pandas_s": round(p_med, 3), "pandas_all_s": [round(t, 3) for t in p_all],
        "dask_s": round(d_med, 3), "dask_all_s": [round(t, 3) for t in d_all],
        "pandas_rows_per_s": round(args.rows / p_med), "dask_rows_per_s": round(args.rows / d_med),
        "dask_over_pandas": round(p_med / d_med, 2),
        "identical_row_for_row": same,
        **(spark_result or {}),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    name = RESULTS.with_name("scale_scan.json" if args.scan else "scale.json")
    name.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same and (spark_result is None or spark_result["spark_identical_row_for_row"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
