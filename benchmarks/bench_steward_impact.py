"""Do stewards at work slow researchers' governed reads? Side by side, in one run.

    python benchmarks/bench_steward_impact.py [--records 200000] [--seconds 8] [--rounds 2]

A real ``jupyter server`` with the extension, its SQLite audit log pre-filled with ``--records``
sealed records (bench_audit's generator). Eight concurrent readers ask ``POST
/jupyter-guard/api/decide`` for a governed read under a ``redact`` effect in a loop -- the
same server path as a kernel's read (``/kernel/decide`` adds only the kernel token check):
validation, the governor's decision and a durable, sealed audit record before the answer.

Two phases alternate (``--rounds`` times each, so drift on a shared machine hits both):

* ``quiet``: the readers alone;
* ``stewards``: the readers while three stewards page through the log without pause
  (``limit`` 5000, 1000 for one user, 200 for one dataset) and a fourth verifies the whole
  chain again and again. The stewards' client (their browsers, which in a deployment run on
  their own machines) is a separate process at a lower CPU priority, so what is measured is the
  server's share of their work, not this client parsing 4 MB pages.

Reported: reads/s and the readers' decide p50/p95 per phase, and their ratios. The target
(issue 14) is a slowdown of at most 20%. Writes benchmarks/results/steward_impact.json.
The client runs on the same machine as the server (2 cores here), so both phases pay for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "steward_impact.json"
READERS = 8
STEWARD_QUERIES = ("limit=5000", "limit=1000&user=user007", "limit=200&dataset=dataset_3")

DATASETS = """\
datasets:
  - name: patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [data/patients.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
    purposes: [treatment-research]
"""
POLICY = """\
roles:
  steward: {users: [dana]}
  researcher: {groups: [research]}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - name: stewards
    roles: [steward]
    effect: allow
    check_purpose: false
  - name: restricted-read
    labels: [restricted]
    actions: [read, discover]
    roles: [researcher]
    effect: redact
    require_purpose: true
"""
# The server loads this module's BenchUsers (PYTHONPATH=benchmarks): token -> user and groups.
USERS = {"tok-rita": ("rita", ["research"]), "tok-dana": ("dana", ["stewards"])}


def _identity_provider():
    from jupyter_server.auth.identity import IdentityProvider, User

    class BenchUser(User):
        pass

    class Provider(IdentityProvider):
        def get_user_token(self, handler):
            token = self.get_token(handler)
            if token in USERS:
                name, groups = USERS[token]
                handler._token_authenticated = True
                user = BenchUser(username=name, name=name)
                user.groups = groups
                return user
            return super().get_user_token(handler)

    return Provider


if os.environ.get("JUPYTER_GUARD_BENCH_SERVER"):  # imported by the server subprocess
    BenchUsers = _identity_provider()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, records: int) -> tuple[subprocess.Popen, str, dict]:
    sys.path.insert(0, str(HERE))
    import bench_audit

    catalog, audit, root = base / "catalog", base / "audit", base / "root"
    for d in (catalog, audit, root / "data"):
        d.mkdir(parents=True)
    (catalog / "datasets.yaml").write_text(textwrap.dedent(DATASETS))
    (catalog / "policy.yaml").write_text(textwrap.dedent(POLICY))
    (root / "data" / "patients.csv").write_text("ssn\n123-45-6789\n")
    fd = os.open(audit / "audit.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(bench_audit.KEY.hex())
    built = bench_audit.build_big_log(str(audit / "audit.sqlite"), records)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_GUARD_BENCH_SERVER": "1", "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_DATA_DIR": str(base / "data"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={root}", "--ServerApp.token=bench-admin",
         "--ServerApp.jpserver_extensions={'jupyter_guard': True}",
         "--ServerApp.identity_provider_class=bench_steward_impact.BenchUsers",
         f"--GuardApp.catalog_dir={catalog}", f"--GuardApp.audit_dir={audit}",
         "--GuardApp.principal_source=identity", "--GuardApp.catalog_reload_interval=0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(base / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    import urllib.request

    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/jupyter-guard/api/status?token=tok-dana", timeout=2).read()
            return proc, url, built
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the server did not start; see {base / 'server.log'}:\n{(base / 'server.log').read_text()[-3000:]}")


async def phase(url: str, seconds: float, stewards: bool) -> dict:
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=READERS + 8)
    client = AsyncHTTPClient()
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    body = json.dumps({"target": "data/patients.csv", "action": "read", "purpose": "treatment-research",
                       "kernel_id": "bench", "notebook": "bench.ipynb"})

    async def reader():
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            resp = await client.fetch(f"{url}/jupyter-guard/api/decide", method="POST", body=body,
                                      headers={"Authorization": "token tok-rita"}, request_timeout=120)
            latencies.append(time.perf_counter() - t0)
            answer = json.loads(resp.body)
            assert answer["effect"] == "redact" and answer["audit_seq"], answer

    jobs = [reader() for _ in range(READERS)]
    stewards_proc = None
    if stewards:  # their browsers are elsewhere: the client side of their work runs apart, below
        stewards_proc = subprocess.Popen(  # the readers' priority, so it is the server's share we see
            [sys.executable, __file__, "--steward-client", url, str(seconds + 1.0)],  # covers the whole window
            stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(19))
    t0 = time.perf_counter()
    await asyncio.gather(*jobs)
    elapsed = time.perf_counter() - t0
    steward_calls = json.loads(stewards_proc.communicate(timeout=600)[0]) if stewards_proc else None
    ordered = sorted(latencies)
    return {
        "reads": len(latencies),
        "reads_per_s": len(latencies) / seconds,
        "decide_p50_ms": statistics.median(ordered) * 1000,
        "decide_p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "elapsed_s": elapsed,
        **({"steward_calls": steward_calls} if steward_calls else {}),
    }


async def steward_client(url: str, seconds: float) -> dict:
    """Three stewards paging through the log without pause and a fourth verifying it, for ``seconds``."""
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    stop = time.perf_counter() + seconds
    calls = {"queries": 0, "verifies": 0}

    async def steward(query: str | None):
        while time.perf_counter() < stop:
            route = f"audit?{query}" if query else "audit/verify"
            resp = await client.fetch(f"{url}/jupyter-guard/api/{route}", headers={"Authorization": "token tok-dana"},
                                      request_timeout=300)
            answer = json.loads(resp.body)
            if query:
                assert answer["records"], query
                calls["queries"] += 1
            else:
                assert answer["ok"], answer
                calls["verifies"] += 1

    await asyncio.gather(*(steward(q) for q in STEWARD_QUERIES), steward(None))
    return calls


def _cpu(server) -> tuple[float, float]:
    """CPU seconds of the server process, and of its reader processes (alive ones)."""
    own = server.cpu_times()
    readers = 0.0
    for child in server.children(recursive=True):
        try:
            t = child.cpu_times()
            readers += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.user + own.system, readers


def run(records: int, seconds: float, rounds: int) -> dict:
    base = Path(tempfile.mkdtemp(prefix="bench-steward-"))
    proc, url, built = start_server(base, records)
    try:
        asyncio.run(phase(url, 2, False))  # warm up: connections, caches, the first decisions
        phases: dict[str, list[dict]] = {"quiet": [], "stewards": []}
        server = psutil.Process(proc.pid)
        for _ in range(rounds):
            for name in ("quiet", "stewards"):
                before = _cpu(server)
                result = asyncio.run(phase(url, seconds, name == "stewards"))
                after = _cpu(server)
                # where the CPU went: the server's own process (its event loop) and its readers
                result["server_cpu_s"] = round(after[0] - before[0], 2)
                result["readers_cpu_s"] = round(after[1] - before[1], 2)
                result["server_cpu_ms_per_read"] = round(1000 * result["server_cpu_s"] / result["reads"], 3)
                phases[name].append(result)
                print(name, json.dumps(result), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(p[key] for p in phases[name])

    summary = {name: {k: round(med(name, k), 3) for k in ("reads_per_s", "decide_p50_ms", "decide_p95_ms",
                                                           "server_cpu_ms_per_read")}
               for name in phases}
    return {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "log_records": built["events"],
        "readers": READERS,
        "steward_queries": list(STEWARD_QUERIES) + ["verify"],
        "seconds_per_phase": seconds,
        "phases": phases,
        "summary": summary,
        "reads_per_s_ratio": round(summary["stewards"]["reads_per_s"] / summary["quiet"]["reads_per_s"], 3),
        "decide_p95_ratio": round(summary["stewards"]["decide_p95_ms"] / summary["quiet"]["decide_p95_ms"], 3),
        "target": "reads/s and decide p95 within 20% (ratio >= 0.8 and <= 1.2)",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steward-client", nargs=2, metavar=("URL", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steward_client:
        print(json.dumps(asyncio.run(steward_client(args.steward_client[0], float(args.steward_client[1])))))
        return 0
    result = run(args.records, args.seconds, args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "reads_per_s_ratio", "decide_p95_ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
