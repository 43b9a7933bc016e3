"""Brokered reads vs reading in the kernel, side by side in one run (issue 13).

    python benchmarks/bench_brokered.py                 # 1M-row Parquet, 300k-row CSV (a few minutes)
    python benchmarks/bench_brokered.py --full          # the issue's sizes: 10M rows / ~1 GB Parquet, ~100 MB CSV
    python benchmarks/bench_brokered.py --rows 200000 --csv-rows 100000 --rounds 1   # quick

One data set (id, name, ssn, email, a short free-text note, amount, three numeric measures),
written as Parquet and as CSV, under catalog column rules ``ssn`` mask, ``name`` and ``email``
hash, ``note`` scan. A real guard service (``python -m jupyter_guard.service``, token mode)
brokers both files. Each variant runs in a fresh child process playing the kernel:

* **direct + redaction**: ``pd.read_parquet`` / ``pd.read_csv`` of the file, then
  ``Redactor.redact_frame`` with the same rules — what a kernel does for a direct dataset;
* **direct read only**: the same read without redaction (the bar a projection must beat);
* **brokered full**: decide over HTTP (ticket), ``POST api/read``, the Arrow stream built into
  a pandas frame by ``jupyter_guard.kernel.brokered`` — what ``pd.read_parquet`` of a brokered
  dataset does;
* **brokered projection**: the same with ``columns=["id", "amount"]``.

Timed: from the call to the frame (Presidio and the readers are imported and warm before).
Kernel memory: the child's peak RSS (VmHWM, reset just before the read) above its RSS just
before the read, over the result frame's ``memory_usage(deep=True)``. Service memory: the service's peak RSS (VmHWM) above its RSS before
the read, for full reads of the whole file and of a quarter of it, each in a fresh service: a
bound set by the batch size does not grow with the file. Rounds interleave the variants
(ABCD, DCBA, ...) and the table takes the median. Writes benchmarks/results/brokered.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
RESULTS = HERE / "results" / "brokered.json"
RULES = {"ssn": ("US_SSN", "mask"), "name": ("PERSON", "hash"), "email": ("EMAIL_ADDRESS", "hash"),
         "note": ("FREE_TEXT", "scan")}
PROJECTION = ["id", "amount"]


# -- data and catalog ---------------------------------------------------------------------

def write_data(directory: Path, rows: int, csv_rows: int) -> dict[str, Path]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    out = {"parquet": directory / "big.parquet", "parquet_quarter": directory / "quarter.parquet",
           "csv": directory / "big.csv", "warm": directory / "warm.parquet"}
    writer = None
    step = 500_000
    for start in range(0, rows, step):
        ids = np.arange(start, min(rows, start + step))
        frame = pd.DataFrame({
            "id": ids,
            "name": [f"Person {i % 50_000}" for i in ids],
            "ssn": [f"{100 + i % 800:03d}-{10 + i % 89:02d}-{i % 10_000:04d}" for i in ids],
            "email": [f"user{i % 200_000}@example.org" for i in ids],
            "note": [f"visit {i % 97} ok" if i % 5 else f"call back at 212-555-{i % 10_000:04d}" for i in ids],
            "amount": rng.integers(1, 10_000, len(ids)),
            "m1": rng.random(len(ids)), "m2": rng.random(len(ids)), "m3": rng.random(len(ids)),
        })
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(out["parquet"], table.schema)
        writer.write_table(table, row_group_size=128_000)
        if start == 0:
            pq.write_table(table.slice(0, max(1, rows // 4)), out["parquet_quarter"], row_group_size=128_000)
            pq.write_table(table.slice(0, 2000), out["warm"])
            table.slice(0, min(csv_rows, len(ids))).to_pandas().to_csv(out["csv"], index=False)
    writer.close()
    if csv_rows > step:  # the CSV from the Parquet file, in slices
        pf = pq.ParquetFile(out["parquet"])
        done = step
        with open(out["csv"], "a") as f:
            for batch in pf.iter_batches(batch_size=step):
                if batch.column(0)[0].as_py() < step:
                    continue
                n = min(len(batch), csv_rows - done)
                if n <= 0:
                    break
                batch.slice(0, n).to_pandas().to_csv(f, index=False, header=False)
                done += n
    return out


def write_catalog(directory: Path, files: dict[str, Path]) -> Path:
    cat = directory / "catalog"
    cat.mkdir()
    columns = "\n".join(f"      {c}: {{entity: {e}, rule: {r}}}" for c, (e, r) in RULES.items())
    entries = "".join(textwrap.dedent(f"""\
          - name: {name}
            label: restricted
            access: brokered
            steward: Dana Steward <dana@example.org>
            locations: [{path}]
            columns:
        """) + columns + "\n" for name, path in files.items())
    (cat / "datasets.yaml").write_text("datasets:\n" + entries)
    (cat / "policy.yaml").write_text(textwrap.dedent("""\
        roles: {researcher: {users: [rita]}}
        defaults: {unlabeled: allow, no_rule: deny}
        rules:
          - {name: restricted-read, labels: [restricted], actions: [read], roles: [researcher], effect: redact}
        """))
    return cat


class Service:
    """A real guard service in token mode, with its own audit dir and pseudonym key."""

    def __init__(self, workdir: Path, catalog: Path, key_file: Path, token_file: Path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "service_config.py"
        cfg.write_text(textwrap.dedent(f"""\
            c.GuardService.ip = "127.0.0.1"
            c.GuardService.port = {self.port}
            c.GuardService.auth = "token"
            c.GuardService.tokens_file = {str(token_file)!r}
            c.GuardSettings.catalog_dir = {str(catalog)!r}
            c.GuardSettings.catalog_reload_interval = 0
            c.GuardSettings.audit_dir = {str(workdir / 'audit')!r}
            c.GuardSettings.pseudonym_key_file = {str(key_file)!r}
            """))
        self.log = open(workdir / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyter_guard.service", "--config", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        self.url = f"http://127.0.0.1:{self.port}/"
        for _ in range(300):
            try:
                with urllib.request.urlopen(self.url + "api/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((workdir / "service.log").read_text()) from None
                time.sleep(0.1)
        raise RuntimeError("the guard service did not start")

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                      if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# -- one variant, in a child process ------------------------------------------------------

def rss() -> int:
    """This process's RSS now; and its peak since then is reset (Linux: clear_refs 5), so the
    peak read afterwards belongs to what ran after this call, not to the imports before it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args) -> dict:
    import pandas as pd
    import pyarrow.csv  # noqa: F401 - loaded in a kernel that has read before: not the read's memory
    import pyarrow.ipc  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from jupyter_guard.redaction import Detector, Redactor

    rules = [{"name": c, "entity": e, "rule": r} for c, (e, r) in RULES.items()]
    path = args.path
    fmt = "csv" if path.endswith(".csv") else "parquet"
    if args.variant.startswith("direct"):
        from jupyter_guard.credentials import load_key_file

        redactor = Redactor(Detector(), pseudonym_key=load_key_file(args.key, what="pseudonym key", create=False))
        redactor.redact_frame(pd.DataFrame({"note": ["warm up 212-555-0100"], "ssn": ["123-45-6789"]}), rules[:1] + rules[3:])
        before = rss()
        t0 = time.perf_counter()
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        if args.variant == "direct":
            frame, _ = redactor.redact_frame(frame, rules)
        seconds = time.perf_counter() - t0
    else:
        from jupyter_guard.kernel import brokered

        os.environ["JUPYTER_GUARD_BROKER_URL"] = args.service + "api/read"
        token = Path(args.token).read_text().strip()
        before = rss()
        t0 = time.perf_counter()
        req = urllib.request.Request(args.service + "api/decide", method="POST", headers={
            "Authorization": f"token {token}", "Content-Type": "application/json"},
            data=json.dumps({"target": path, "kind": "path", "action": "read"}).encode())
        with urllib.request.urlopen(req, timeout=60) as r:
            decision = json.loads(r.read())
        columns = PROJECTION if args.variant == "brokered_projection" else None
        shape = brokered.Shape(fmt, columns=columns)
        got, _ = brokered.fetch(decision, shape)
        tables = got if isinstance(got, list) else [got]
        del got  # as the kernel's reader does: the tables are consumed into the frame
        frame = brokered._result(tables, shape)
        seconds = time.perf_counter() - t0
    peak = peak_rss()
    result_bytes = int(frame.memory_usage(deep=True).sum())
    return {"seconds": seconds, "rows": len(frame), "columns": len(frame.columns), "result_bytes": result_bytes,
            "kernel_peak_over_start": max(0, peak - before), "digest": _digest(frame)}


def _digest(frame) -> str:
    """A content digest to check both paths return the same frame."""
    import hashlib

    import pandas as pd

    h = pd.util.hash_pandas_object(frame.astype(str), index=False).values
    return hashlib.sha256(h.tobytes()).hexdigest()[:16]


def run_child(variant: str, path: Path, service: Service | None, key: Path, token: Path) -> dict:
    argv = [sys.executable, __file__, "--child", variant, "--path", str(path), "--key", str(key),
            "--token", str(token), "--service", service.url if service else ""]
    before = service.memory() if service else None
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-4000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if service:
        rss_before, _ = before
        _, hwm = service.memory()
        res["service_peak_over_start"] = max(0, hwm - rss_before)
    return res


# -- the run ------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--csv-rows", type=int, default=300_000)
    p.add_argument("--full", action="store_true", help="10M rows (~1 GB Parquet) and a ~100 MB CSV, as the issue")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    for hidden in ("--path", "--key", "--token", "--service"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variant = args.child
        print(json.dumps(child(args)))
        return 0
    if args.full:
        args.rows, args.csv_rows = 10_000_000, 1_000_000

    from jupyter_guard.service.identity import add_token

    tmp = Path(tempfile.mkdtemp(prefix="jg-bench-brokered-"))
    print(f"writing {args.rows:,} rows of Parquet and {args.csv_rows:,} of CSV under {tmp} ...", flush=True)
    files = write_data(tmp, args.rows, args.csv_rows)
    catalog = write_catalog(tmp, files)
    from jupyter_guard.credentials import load_key_file

    key = tmp / "pseudonym.key"
    load_key_file(str(key), what="pseudonym key", create=True)  # shared by the kernel path and the service
    tokens = tmp / "tokens.json"
    token = tmp / "rita.token"
    token.write_text(add_token(str(tokens), "rita"))
    sizes = {k: v.stat().st_size for k, v in files.items()}

    service = Service(tmp / "service", catalog, key, tokens)
    results: dict[str, dict[str, list]] = {}
    try:
        # warm the service's redactor (Presidio) before anything is timed
        run_child("brokered_full", files["warm"], service, key, token)
        for fmt in ("parquet", "csv"):
            variants = ["direct", "direct_read_only", "brokered_full", "brokered_projection"]
            for rnd in range(args.rounds):
                for variant in (variants if rnd % 2 == 0 else variants[::-1]):
                    res = run_child(variant, files[fmt], service if variant.startswith("brokered") else None, key, token)
                    results.setdefault(f"{fmt}:{variant}", {}).setdefault("runs", []).append(res)
                    print(f"  {fmt:8s} {variant:20s} {res['seconds']:7.2f} s  {res['rows']:>10,} rows", flush=True)
    finally:
        service.stop()
    # the service's memory does not follow the file size: full reads of a quarter and of the whole file
    bound = {}
    for name in ("parquet_quarter", "parquet"):
        fresh = Service(tmp / f"service-{name}", catalog, key, tokens)
        try:
            run_child("brokered_full", files["warm"], fresh, key, token)  # warm: Presidio loaded
            bound[name] = run_child("brokered_full", files[name], fresh, key, token)["service_peak_over_start"]
        finally:
            fresh.stop()

    summary = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()},
               "rows": args.rows, "csv_rows": args.csv_rows, "bytes": sizes, "rounds": args.rounds,
               "batch_rows": 65_536, "rules": {c: r for c, (_, r) in RULES.items()}, "formats": {}}
    for fmt in ("parquet", "csv"):
        med = {v: statistics.median(r["seconds"] for r in results[f"{fmt}:{v}"]["runs"])
               for v in ("direct", "direct_read_only", "brokered_full", "brokered_projection")}
        last = {v: results[f"{fmt}:{v}"]["runs"][-1] for v in med}
        summary["formats"][fmt] = {
            "seconds": med,
            "brokered_full_over_direct": round(med["brokered_full"] / med["direct"], 3),
            "projection_over_direct_read_only": round(med["brokered_projection"] / med["direct_read_only"], 3),
            "same_frame": last["brokered_full"]["digest"] == last["direct"]["digest"],
            "kernel_peak_over_result": {v: round(last[v]["kernel_peak_over_start"] / last[v]["result_bytes"], 2)
                                        for v in ("direct", "brokered_full")},
            "service_peak_over_start_bytes": last["brokered_full"].get("service_peak_over_start"),
            "runs": {v: [round(r["seconds"], 3) for r in results[f"{fmt}:{v}"]["runs"]] for v in med},
        }
    summary["service_peak_full_read"] = {"quarter_file": bound["parquet_quarter"], "whole_file": bound["parquet"],
                                         "whole_over_quarter": round(bound["parquet"] / max(1, bound["parquet_quarter"]), 2)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "machine"}, indent=1))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
