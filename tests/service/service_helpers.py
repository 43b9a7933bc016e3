"""Start a real guard service (``python -m jupyter_guard.service``) in a process of its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, path: str, token: str | None = None, body=None, method: str | None = None):
    """(status, JSON) of one call to the service's API."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    req = urllib.request.Request(url + "api/" + path, headers=headers, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextmanager
def guard_service(workdir: Path, config: str, *, env: dict | None = None, user: str | None = None):
    """Yield (base URL, process) of a service started with ``config`` (Python config lines) and
    wait for its health route; stop it (SIGTERM) afterwards and fail with its log if it died."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "jupyter_guard_service_config.py"
    cfg.write_text(f"c.GuardService.ip = '127.0.0.1'\nc.GuardService.port = {port}\n" + textwrap.dedent(config))
    log = open(workdir / "service.log", "wb")  # noqa: SIM115 - closed below
    argv = [sys.executable, "-m", "jupyter_guard.service", "--config", str(cfg)]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"the guard service exited {proc.returncode}:\n{service_log(workdir)}")
            try:
                if call(url, "health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the guard service did not answer:\n{service_log(workdir)}")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def service_log(workdir: Path) -> str:
    path = workdir / "service.log"
    return path.read_text(errors="replace")[-6000:] if path.exists() else ""
