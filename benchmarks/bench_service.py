"""The guard service under load: 5,000 simulated users against real service processes.

    python benchmarks/bench_service.py            # a few minutes
    python benchmarks/bench_service.py --quick    # under a minute
    python benchmarks/bench_service.py --no-wrk --no-sqlite --users 5000 --duration 20

Each scenario starts a real ``python -m jupyter_guard.service`` (token identity: one issued
token per simulated user, plus a steward's) with the PostgreSQL audit store on a throwaway
database of the local server (``--dsn``), waits for ``GET api/health``, then drives it with a
closed-loop load from ``--clients`` client processes, each holding keep-alive connections
(asyncio streams, HTTP/1.1). Every request picks a user at random and a kind from the mix:

* 80% ``POST api/decide`` -- reads of four catalogued files (restricted / internal /
  public / confidential) by researchers and non-researchers: allow, redact and 403 refusals;
* 15% ``POST api/records`` -- a ``cell_execution`` append with the cell's code (as servers send it);
* 5% ``GET api/records?user=uN&limit=50&order=desc`` by the steward.

Scenarios, side by side in one run (``--rounds`` times, interleaved): PostgreSQL with 1
service process vs 2 (``c.GuardService.processes``), 500 vs 5,000 users, SQLite vs
PostgreSQL, and (when ``wrk`` is installed) the 1-process PostgreSQL service driven by wrk,
a C load generator, to show what the Python client costs. Two diagnostic runs send decisions
only (no appends, so no masking of cell code), 1 and 2 processes. A last run paces the load at
half the 1-process saturation rate for latency below saturation (latency counted from each
request's scheduled time, so a stall is not hidden).

After each scenario: the service's audit chain is verified (``GET api/verify`` as the steward),
and the store must hold exactly one decision record per decide request answered (200 or 403)
and one cell_execution record per 201 -- otherwise the run fails. CPU of the clients, the
service processes and PostgreSQL is read from /proc, because they share the machine's cores.

Prints a table and writes benchmarks/results/service.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from jupyter_guard.service.identity import token_digest  # noqa: E402

RESULTS = HERE / "results" / "service.json"
STEWARD = "dana"
MIX = (("decide", 0.80), ("append", 0.15), ("query", 0.05))

DATASETS = """\
datasets:
  - name: patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [data/patients.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
    purposes: [treatment-research]
  - name: visits
    label: internal
    steward: Ops Team <ops@example.org>
    locations: [data/visits/*.csv]
  - name: clinics
    label: public
    steward: Ops Team <ops@example.org>
    locations: [data/clinics.csv]
  - name: hr
    label: confidential
    steward: {name: Hana HR, email: hana@example.org}
    locations: [data/hr/*.csv, {table: warehouse.hr.*}]
"""
POLICY = """\
roles:
  steward: {users: [dana]}
  researcher: {groups: [research]}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - {name: stewards, roles: [steward], effect: allow, check_purpose: false}
  - {name: public-open, labels: [public], effect: allow}
  - {name: internal-researchers, labels: [internal], roles: [researcher], effect: allow}
  - {name: confidential-redacted, labels: [confidential], actions: [read, discover], effect: redact}
  - {name: restricted-read, labels: [restricted], actions: [read, discover], roles: [researcher],
     effect: redact, require_purpose: true}
"""
FILES = ("data/patients.csv", "data/visits/2026-01.csv", "data/clinics.csv", "data/hr/payroll.csv")
CODE = textwrap.dedent("""\
    import pandas as pd
    df = pd.read_csv('data/patients.csv')
    summary = df.groupby('clinic').agg(n=('id', 'count'), age=('age', 'mean'))
    summary.sort_values('n', ascending=False).head(20)
""")


# -- the service ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tokens(path: Path, users: list[str]) -> dict[str, str]:
    """One issued token per user, in the service's token file (what ``add_token`` writes: the
    token's SHA-256 -> user, 0600), written once instead of once per user."""
    tokens = {u: secrets.token_urlsafe(32) for u in users}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({token_digest(t): u for u, t in tokens.items()}, f)
    return tokens


def call(url: str, path: str, token: str, timeout: float = 600):
    req = urllib.request.Request(url + "api/" + path, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Service:
    """A real guard service process (and its forked workers), started from a config file."""

    def __init__(self, work: Path, name: str, *, store: str, processes: int, users: list[str], dsn: str,
                 profile: bool = False):
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.store, self.table, self.dsn = store, "audit_" + re.sub(r"[^a-z0-9]+", "_", name.lower()), dsn
        researchers = [u for i, u in enumerate(users) if i % 2 == 0]  # half the users are researchers
        lines = [
            f"c.GuardService.ip = '127.0.0.1'", f"c.GuardService.port = {self.port}",
            "c.GuardService.auth = 'token'", f"c.GuardService.tokens_file = {str(work / 'tokens.json')!r}",
            f"c.GuardService.root_dir = {str(work / 'root')!r}", f"c.GuardService.processes = {processes}",
            "c.GuardService.server_check_interval = 0",
            f"c.GuardSettings.catalog_dir = {str(work / 'catalog')!r}",
            f"c.GuardSettings.audit_dir = {str(self.dir / 'audit')!r}",
            f"c.GuardSettings.roles = {{'researcher': {{'users': {researchers!r}}}}}",
        ]
        if store == "postgres":
            lines += ["c.GuardSettings.audit_store_class = 'jupyter_guard.audit.postgres.PostgresAuditStore'",
                      f"c.PostgresAuditStore.dsn = {dsn!r}", f"c.PostgresAuditStore.table = {self.table!r}"]
        (self.dir / "config.py").write_text("\n".join(lines) + "\n")
        argv = [sys.executable, "-m", "jupyter_guard.service", "--config", str(self.dir / "config.py")]
        if profile:
            argv = [sys.executable, "-m", "cProfile", "-o", str(self.dir / "service.prof"), "-m",
                    "jupyter_guard.service", "--config", str(self.dir / "config.py")]
        self.log = open(self.dir / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the guard service exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "api/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the guard service did not answer:\n{self.log_text()}")
        if processes > 1:  # every worker answers health only once it has set up; give the rest a moment
            deadline = time.time() + 30
            while len(self.pids()) < processes + 1 and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)

    def log_text(self) -> str:
        return (self.dir / "service.log").read_text(errors="replace")[-6000:]

    def pids(self) -> list[int]:
        out = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.append(int(entry))
        return out

    def counts(self) -> dict[str, int]:
        """Records in the store by event type, read from the store itself."""
        if self.store == "postgres":
            import psycopg

            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute(f'SELECT "event_type", count(*) FROM {self.table} GROUP BY 1').fetchall()
        else:
            from jupyter_guard.paths import default_audit_db

            db = default_audit_db(str(self.dir / "audit"))
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                rows = conn.execute('SELECT "event_type", count(*) FROM audit_log GROUP BY 1').fetchall()
        return {k: int(v) for k, v in rows}

    def stop(self) -> None:
        """SIGTERM the service and its forked workers. A signal to the parent alone does not reach
        the workers: tornado's fork_processes parent just dies and they keep serving, orphaned."""
        workers = [p for p in self.pids() if p != self.proc.pid]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        deadline = time.time() + 60
        for pid in workers:
            while Path(f"/proc/{pid}").exists() and time.time() < deadline:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists() and time.time() >= deadline:
                os.kill(pid, signal.SIGKILL)
        self.log.close()


# -- CPU accounting (/proc) ----------------------------------------------------------------------


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def postgres_pids() -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(entry))
            except OSError:
                pass
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f[:8]) - idle, sum(f[:8])


class CpuMeter:
    def __init__(self, service: Service):
        self.service = service

    def __enter__(self):
        self.spids, self.ppids = self.service.pids(), postgres_pids()
        self.s0 = {p: _ticks(p) for p in self.spids}
        self.p0 = {p: _ticks(p) for p in self.ppids}
        self.m0, self.t0 = machine_ticks(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        self.service_s = sum(_ticks(p) - t for p, t in self.s0.items()) / hz
        self.postgres_s = sum(max(0, _ticks(p) - t) for p, t in self.p0.items()) / hz
        m1 = machine_ticks()
        self.machine_busy_s = (m1[0] - self.m0[0]) / hz
        self.machine_total_s = (m1[1] - self.m0[1]) / hz


# -- the load generator --------------------------------------------------------------------------


def make_requests(tokens: dict[str, str], users: list[str], root: Path, count: int, seed: int, mix=MIX) -> list:
    """``count`` (kind, raw HTTP request bytes) from ``mix``, for random users."""
    rng = random.Random(seed)
    steward = tokens[STEWARD]
    kinds, weights = zip(*mix)
    out = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        user = rng.choice(users)
        ctx = {"kernel_id": str(uuid.UUID(int=rng.getrandbits(128))), "cell_id": f"cell-{rng.randrange(10**6)}"}
        if kind == "decide":
            body = {"action": "read", "target": str(root / rng.choice(FILES)), "kind": "path",
                    "purpose": "treatment-research", "context": ctx}
            method, path, token = "POST", "/api/decide", tokens[user]
        elif kind == "append":
            body = {"event_type": "cell_execution", "action": "execute", **ctx,
                    "notebook": f"work/{user}/analysis-{rng.randrange(20)}.ipynb",
                    "details": {"execution_count": rng.randrange(1, 200), "status": "ok", "code": CODE,
                                "datasets": []}}
            method, path, token = "POST", "/api/records", tokens[user]
        else:
            body = None
            method, path, token = "GET", f"/api/records?user={user}&limit=50&order=desc", steward
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        out.append((kind, head + data))
    return out


async def _connection(port: int, reqs: list, offset: int, stats: dict, window: list, interval: float | None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    n, i = len(reqs), offset
    next_at = loop.time() + (random.random() * interval if interval else 0)
    clock = time.perf_counter
    while True:
        if interval:  # paced: wait for the next slot, count latency from it (no coordinated omission)
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            start = clock() - max(0.0, loop.time() - next_at)
            next_at += interval
        else:
            start = clock()
        if start >= window[2]:
            break
        kind, raw = reqs[i % n]
        i += 1
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        end = clock()
        key = kind if kind != "decide" else ("decide_refused" if status == 403 else "decide_ok")
        s = stats.setdefault(key, {"answered": 0, "status": {}, "lat": []})
        s["answered"] += 1
        s["status"][status] = s["status"].get(status, 0) + 1
        if window[0] <= start and end <= window[1]:
            s["lat"].append(end - start)
    writer.close()


def client_main(port, reqs, conns, warmup, duration, interval, seed, barrier_at, out) -> None:
    random.seed(seed)
    while time.time() < barrier_at:  # all clients start together
        time.sleep(0.005)
    stats: dict = {}
    t0 = time.perf_counter()
    window = [t0 + warmup, t0 + warmup + duration, t0 + warmup + duration]
    cpu0 = time.process_time()

    async def run():
        await asyncio.gather(*(_connection(port, reqs, k * 997 + seed * 131, stats, window, interval)
                               for k in range(conns)))

    asyncio.run(run())
    out.put({"stats": stats, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0})


def pct(samples: list[float]) -> dict:
    s = sorted(samples)
    if not s:
        return {}
    pick = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)  # noqa: E731 - ms
    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": round(statistics.fmean(s) * 1000, 2)}


def drive_python(svc: Service, reqs_per_client: list, conns: int, warmup: float, duration: float,
                 rate: float | None = None) -> dict:
    """Closed-loop (or paced, ``rate`` requests/s over all connections) load from client processes."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    total_conns = conns * len(reqs_per_client)
    interval = total_conns / rate if rate else None
    at = time.time() + 0.5
    procs = [ctx.Process(target=client_main, args=(svc.port, reqs, conns, warmup, duration, interval, k, at, out))
             for k, reqs in enumerate(reqs_per_client)]
    for p in procs:
        p.start()
    with CpuMeter(svc) as cpu:
        parts = [out.get(timeout=warmup + duration + 600) for _ in procs]
    for p in procs:
        p.join()
    merged: dict = {}
    for part in parts:
        for key, s in part["stats"].items():
            m = merged.setdefault(key, {"answered": 0, "status": {}, "lat": []})
            m["answered"] += s["answered"]
            m["lat"] += s["lat"]
            for code, n in s["status"].items():
                m["status"][code] = m["status"].get(code, 0) + n
    return summarise(merged, duration, cpu, sum(p["cpu_s"] for p in parts), client="python",
                     connections=total_conns, rate=rate)


def summarise(merged: dict, duration: float, cpu: CpuMeter, client_cpu_s: float, **extra) -> dict:
    kinds = {k: {"answered": v["answered"], "status": {str(c): n for c, n in sorted(v["status"].items())},
                 "in_window": len(v["lat"]), "per_s": round(len(v["lat"]) / duration), **pct(v["lat"])}
             for k, v in sorted(merged.items())}
    decide_lat = merged.get("decide_ok", {"lat": []})["lat"] + merged.get("decide_refused", {"lat": []})["lat"]
    all_lat = [x for v in merged.values() for x in v["lat"]]
    wall = cpu.seconds
    return {
        **extra, "kinds": kinds,
        "decisions_per_s": round(len(decide_lat) / duration), "decide": pct(decide_lat),
        "appends_per_s": round(len(merged.get("append", {"lat": []})["lat"]) / duration),
        "requests_per_s": round(len(all_lat) / duration), "all": pct(all_lat),
        "decide_answered": sum(merged.get(k, {"answered": 0})["answered"] for k in ("decide_ok", "decide_refused")),
        "append_answered": merged.get("append", {"status": {}})["status"].get(201, 0),
        "errors": {k: {c: n for c, n in v["status"].items() if c not in (200, 201, 403)}
                   for k, v in merged.items() if any(c not in (200, 201, 403) for c in v["status"])},
        "cpu": {"wall_s": round(wall, 2), "cores": os.cpu_count(),
                "client_cores": round(client_cpu_s / wall, 2), "service_cores": round(cpu.service_s / wall, 2),
                "postgres_cores": round(cpu.postgres_s / wall, 2),
                "machine_busy_cores": round(cpu.machine_busy_s / wall, 2),
                "client_share_of_busy": round(client_cpu_s / max(cpu.machine_busy_s, 1e-9), 2)},
    }


WRK_LUA = """
local reqs, kinds, i, n = {}, {}, 0, 0
counts = {}  -- global: done() reads it from every thread with thread:get
function init(args)
  local f = io.open(args[1], "r")
  local data = f:read("*a"); f:close()
  for kind, method, path, token, body in data:gmatch("([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\n]*)\\n") do
    n = n + 1
    kinds[n] = kind
    reqs[n] = wrk.format(method, path, {["Authorization"] = "token " .. token,
                                        ["Content-Type"] = "application/json"}, body ~= "" and body or nil)
  end
  i = tonumber(args[2]) % n
end
function request()
  i = i % n + 1
  return reqs[i]
end
function response(status, headers, body)
  local key
  if status == 201 then key = "append"
  elseif status == 403 then key = "decide_refused"
  elseif status == 200 and body:find('"records"', 1, true) then key = "query"
  elseif status == 200 then key = "decide_ok"
  else key = "status_" .. status end
  counts[key] = (counts[key] or 0) + 1
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write("WRKJSON {" .. table.concat(parts, ", ") .. string.format(
    '} {"requests": %d, "seconds": %.3f, "p50": %d, "p95": %d, "p99": %d, "mean": %.1f}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean))
end
"""


def drive_wrk(svc: Service, reqs: list, threads: int, conns: int, duration: float, work: Path) -> dict:
    """Closed-loop load from wrk (C, keep-alive), rotating the same requests; all kinds in one
    latency histogram (wrk has no per-request clock in Lua). Counts per kind from the answers."""
    lua, spec = work / "mix.lua", work / "mix.tsv"
    lua.write_text(WRK_LUA)
    with open(spec, "w") as f:
        for kind, raw in reqs:
            head, body = raw.split(b"\r\n\r\n", 1)
            first = head.split(b"\r\n")[0].decode().split(" ")
            token = [h for h in head.decode().split("\r\n") if h.startswith("Authorization:")][0].split()[-1]
            f.write(f"{kind}\t{first[0]}\t{first[1]}\t{token}\t{body.decode()}\n")
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration:.0f}s", "--latency", "-s", str(lua),
            svc.url, "--", str(spec), "0"]
    with CpuMeter(svc) as cpu:
        t0 = os.times()
        res = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
        t1 = os.times()
    line = next((x for x in res.stdout.splitlines() if x.startswith("WRKJSON")), None)
    if res.returncode or line is None:
        raise RuntimeError(f"wrk failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    counts_text, summary_text = line[8:].split("} {")
    counts, summary = json.loads(counts_text + "}"), json.loads("{" + summary_text)
    client_cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    secs = summary["seconds"]
    decided = counts.get("decide_ok", 0) + counts.get("decide_refused", 0)
    return {
        "client": "wrk", "connections": conns,
        "kinds": {k: {"answered": v, "per_s": round(v / secs)} for k, v in sorted(counts.items())},
        "decisions_per_s": round(decided / secs), "appends_per_s": round(counts.get("append", 0) / secs),
        "requests_per_s": round(summary["requests"] / secs),
        "all": {"p50_ms": summary["p50"] / 1000, "p95_ms": summary["p95"] / 1000, "p99_ms": summary["p99"] / 1000,
                "mean_ms": round(summary["mean"] / 1000, 2)},
        "decide_answered": decided, "append_answered": counts.get("append", 0),
        "errors": {k: v for k, v in counts.items() if k.startswith("status_")},
        "cpu": {"wall_s": round(cpu.seconds, 2), "cores": os.cpu_count(),
                "client_cores": round(client_cpu / cpu.seconds, 2),
                "service_cores": round(cpu.service_s / cpu.seconds, 2),
                "postgres_cores": round(cpu.postgres_s / cpu.seconds, 2),
                "machine_busy_cores": round(cpu.machine_busy_s / cpu.seconds, 2),
                "client_share_of_busy": round(client_cpu / max(cpu.machine_busy_s, 1e-9), 2)},
    }


# -- checks --------------------------------------------------------------------------------------


def check(svc: Service, result: dict, steward_token: str, slack: int = 0) -> dict:
    """The chain verifies, and every answered decision and append is in the store -- or fail.
    ``slack``: requests wrk cut off at its deadline (at most one per connection) may be stored
    without an answer having been counted; the Python client drains, so there it is 0."""
    status, verify = call(svc.url, "verify", steward_token)
    counts = svc.counts()
    within = lambda stored, answered: answered <= stored <= answered + slack  # noqa: E731
    ok = (status == 200 and verify.get("ok") and verify.get("checked") == sum(counts.values())
          and within(counts.get("decision", 0), result["decide_answered"])
          and within(counts.get("cell_execution", 0), result["append_answered"]))
    out = {"verify_ok": bool(verify.get("ok")), "verified": verify.get("checked"), "store": counts,
           "decide_answered": result["decide_answered"], "append_answered": result["append_answered"], "ok": bool(ok)}
    if result["errors"]:  # answered, not stored, so not a durability failure -- but reported, and the run exits 1
        kept = Path(tempfile.gettempdir()) / f"bench_service_errors_{svc.dir.name}.log"
        shutil.copy(svc.dir / "service.log", kept)
        out["server_errors"] = result["errors"]
        out["server_error_log"] = server_errors(kept)[-3000:]
        print(f"  WARNING {svc.dir.name}: answers other than 200/201/403: {result['errors']} (log kept in {kept}):\n"
              + textwrap.indent(out["server_error_log"][-1500:], "    "), flush=True)
    if not ok:
        kept = Path(tempfile.gettempdir()) / f"bench_service_failed_{svc.dir.name}.log"
        shutil.copy(svc.dir / "service.log", kept)
        raise SystemExit(f"DURABILITY/CHAIN CHECK FAILED for {svc.dir.name}: {json.dumps(out)}\n"
                         f"errors: {result['errors']}\nservice errors (log kept in {kept}):\n{server_errors(kept)}")
    return out


def server_errors(log: Path) -> str:
    """The service log's 5xx answers with the tracebacks before them (403 refusals left out)."""
    lines = log.read_text(errors="replace").splitlines()
    out = []
    for i, line in enumerate(lines):
        if re.match(r"^5\d\d (GET|POST) ", line):
            start = max(0, i - 40)
            out += [x for x in lines[start:i + 1] if x] + ["----"]
    return "\n".join(out[-200:]) or "(no 5xx in the log)"


# -- main ----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, one round, no SQLite/wrk (< 60 s)")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--few-users", type=int, default=500)
    ap.add_argument("--duration", type=float, default=12.0, help="measured seconds per scenario")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-wrk", action="store_true")
    ap.add_argument("--no-paced", action="store_true")
    ap.add_argument("--no-diagnostic", action="store_true", help="skip the decide-only runs")
    ap.add_argument("--profile", action="store_true", help="run one extra 1-process scenario under cProfile")
    ap.add_argument("--dsn", default=os.environ.get("JUPYTER_GUARD_TEST_PG", "host=127.0.0.1 port=5432 user=postgres"))
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 6.0, 1.5, 1
        args.no_sqlite = args.no_wrk = args.no_paced = args.no_diagnostic = True
    use_wrk = not args.no_wrk and shutil.which("wrk")
    import psycopg
    from psycopg import sql

    db = f"guard_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.dsn + " dbname=postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    dsn = f"{args.dsn} dbname={db}"
    users = [f"u{i}" for i in range(args.users)]
    few = users[: args.few_users]
    scenarios = [("pg-1proc", "postgres", 1, users), ("pg-2proc", "postgres", 2, users),
                 ("pg-1proc-few-users", "postgres", 1, few)]
    if not args.no_sqlite:
        scenarios.append(("sqlite-1proc", "sqlite", 1, users))
    runs: dict[str, list] = {name: [] for name, *_ in scenarios}
    t_start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_service_") as tmp:
            work = Path(tmp)
            for rel in FILES:
                (work / "root" / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / "root" / rel).write_text("id,x\n1,2\n")
            (work / "catalog").mkdir()
            (work / "catalog" / "datasets.yaml").write_text(DATASETS)
            (work / "catalog" / "policy.yaml").write_text(POLICY)
            tokens = write_tokens(work / "tokens.json", [*users, STEWARD])
            pool = {}
            for label, us, mix in (("many", users, MIX), ("few", few, MIX), ("decide-only", users, (("decide", 1.0),))):
                pool[label] = [make_requests(tokens, us, work / "root", 20_000, seed=k + 100 * len(pool), mix=mix)
                               for k in range(args.clients)]

            def scenario(name, store, procs, us, round_no, runner="python", rate=None, profile=False, mix="many"):
                svc = Service(work, f"{name}-r{round_no}", store=store, processes=procs, users=us, dsn=dsn,
                              profile=profile)
                try:
                    reqs = pool["few" if us is few else mix]
                    if runner == "wrk":
                        res = drive_wrk(svc, reqs[0] + reqs[1 % len(reqs)], 2, args.connections * args.clients,
                                        args.duration, svc.dir)
                        time.sleep(2.0)  # requests wrk cut off at its deadline are still being stored
                    else:
                        res = drive_python(svc, reqs, args.connections, args.warmup, args.duration, rate=rate)
                    res.update(scenario=name, store=store, processes=procs, users=len(us), round=round_no)
                    res["check"] = check(svc, res, tokens[STEWARD],
                                         slack=args.connections * args.clients if runner == "wrk" else 0)
                finally:
                    svc.stop()
                line = (f"  {name:<22} r{round_no} {res['decisions_per_s']:>7,} dec/s {res['requests_per_s']:>7,} req/s"
                        f"  decide p50/p95/p99 {res.get('decide', res['all']).get('p50_ms')}/"
                        f"{res.get('decide', res['all']).get('p95_ms')}/{res.get('decide', res['all']).get('p99_ms')} ms"
                        f"  cpu: service {res['cpu']['service_cores']} pg {res['cpu']['postgres_cores']}"
                        f" client {res['cpu']['client_cores']} busy {res['cpu']['machine_busy_cores']}/{os.cpu_count()}"
                        f"  check ok ({res['check']['store'].get('decision', 0)} decisions)")
                print(line, flush=True)
                return res, svc

            for r in range(args.rounds):
                order = scenarios if r % 2 == 0 else scenarios[::-1]  # interleaved: ABCD, DCBA
                for name, store, procs, us in order:
                    runs[name].append(scenario(name, store, procs, us, r)[0])
            if use_wrk:
                runs["pg-1proc-wrk"] = [scenario("pg-1proc-wrk", "postgres", 1, users, 0, runner="wrk")[0]]
                runs["pg-2proc-wrk"] = [scenario("pg-2proc-wrk", "postgres", 2, users, 0, runner="wrk")[0]]
            if not args.no_diagnostic:  # the same service without appends (and so without masking code)
                runs["pg-1proc-decide-only"] = [scenario("pg-1proc-decide-only", "postgres", 1, users, 0,
                                                         mix="decide-only")[0]]
                runs["pg-2proc-decide-only"] = [scenario("pg-2proc-decide-only", "postgres", 2, users, 0,
                                                         mix="decide-only")[0]]
            if not args.no_paced:
                sat = statistics.median(x["requests_per_s"] for x in runs["pg-1proc"])
                runs["pg-1proc-paced-50%"] = [scenario("pg-1proc-paced-50%", "postgres", 1, users, 0,
                                                       rate=sat * 0.5)[0]]
            if args.profile:
                _, svc = scenario("pg-1proc-profiled", "postgres", 1, users, 0)
                prof = svc.dir / "service.prof"
                if prof.exists():
                    import pstats

                    shutil.copy(prof, HERE / "results" / "service_profile.prof")
                    pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
    finally:
        with psycopg.connect(args.dsn + " dbname=postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))

    def med(name, getter):
        vals = [getter(x) for x in runs.get(name, []) if getter(x) is not None]
        return statistics.median(vals) if vals else None

    summary = {}
    for name in runs:
        summary[name] = {
            "decisions_per_s": med(name, lambda x: x["decisions_per_s"]),
            "requests_per_s": med(name, lambda x: x["requests_per_s"]),
            "appends_per_s": med(name, lambda x: x["appends_per_s"]),
            **{f"decide_{p}": med(name, lambda x, p=p: x.get("decide", {}).get(p)) for p in ("p50_ms", "p95_ms", "p99_ms")},
            **{f"all_{p}": med(name, lambda x, p=p: x["all"].get(p)) for p in ("p50_ms", "p95_ms", "p99_ms")},
            **{f"{k}_p95_ms": med(name, lambda x, k=k: x["kinds"].get(k, {}).get("p95_ms"))
               for k in ("decide_ok", "decide_refused", "append", "query")},
            **{f"{c}_cores": med(name, lambda x, c=c: x["cpu"][f"{c}_cores"]) for c in ("service", "postgres", "client", "machine_busy")},
        }
    ratio = lambda a, b, k="decisions_per_s": (round(summary[a][k] / summary[b][k], 2)  # noqa: E731
                                               if a in summary and b in summary and summary[b][k] else None)
    ratios = {"2proc_over_1proc": ratio("pg-2proc", "pg-1proc"),
              "5000_over_500_users": ratio("pg-1proc", "pg-1proc-few-users"),
              "postgres_over_sqlite": ratio("pg-1proc", "sqlite-1proc"),
              "wrk_2proc_over_1proc": ratio("pg-2proc-wrk", "pg-1proc-wrk"),
              "wrk_over_python_client_1proc": ratio("pg-1proc-wrk", "pg-1proc"),
              "decide_only_2proc_over_1proc": ratio("pg-2proc-decide-only", "pg-1proc-decide-only"),
              "decide_only_over_mix_1proc": ratio("pg-1proc-decide-only", "pg-1proc")}
    main_run = summary["pg-1proc"]
    targets = {"decisions_per_s>=5000": main_run["decisions_per_s"] >= 5000,
               "decide_p95<10ms": main_run["decide_p95_ms"] < 10,
               "near_linear_2proc(>=1.8x)": (ratios["2proc_over_1proc"] or 0) >= 1.8}
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "args": vars(args), "mix": dict(MIX), "seconds_total": round(time.perf_counter() - t_start, 1),
        "summary": summary, "ratios": ratios, "targets_met": targets, "runs": runs,
    }
    print()
    print(f"{'scenario':<22}{'dec/s':>8}{'req/s':>8}{'app/s':>7}{'p50':>7}{'p95':>7}{'p99':>7}"
          f"{'ok p95':>8}{'ref p95':>8}{'app p95':>8}{'qry p95':>8}{'svc':>6}{'pg':>6}{'cli':>6}{'busy':>6}")
    for name, s in summary.items():
        f = lambda v: "-" if v is None else (f"{v:.1f}" if isinstance(v, float) and v < 1000 else f"{v:,.0f}")  # noqa: E731
        print(f"{name:<22}{f(s['decisions_per_s']):>8}{f(s['requests_per_s']):>8}{f(s['appends_per_s']):>7}"
              f"{f(s['decide_p50_ms'] or s['all_p50_ms']):>7}{f(s['decide_p95_ms'] or s['all_p95_ms']):>7}"
              f"{f(s['decide_p99_ms'] or s['all_p99_ms']):>7}{f(s['decide_ok_p95_ms']):>8}{f(s['decide_refused_p95_ms']):>8}"
              f"{f(s['append_p95_ms']):>8}{f(s['query_p95_ms']):>8}{f(s['service_cores']):>6}{f(s['postgres_cores']):>6}"
              f"{f(s['client_cores']):>6}{f(s['machine_busy_cores']):>6}")
    print("latencies in ms (decide unless the client is wrk: all kinds); cpu in cores")
    print("ratios:", json.dumps(ratios))
    print("targets:", json.dumps(targets))
    print("every scenario: chain verified, store decisions == decide answers, cell_execution == 201s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    failed = {f"{name} r{x['round']}": x["errors"] for name, xs in runs.items() for x in xs if x["errors"]}
    if failed:
        print(f"FAILED: the service answered with errors (not stored, so the durability check holds): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
