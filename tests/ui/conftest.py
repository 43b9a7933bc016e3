"""Fixtures for the end-to-end UI tests: a real ``jupyter lab`` and headless Chromium.

The UI tests are skipped only on a developer machine (``CI`` unset) that lacks
``/usr/bin/chromium`` or the ``playwright`` package; under CI a missing browser fails.
Install the browser with ``apt-get install -y chromium`` (never ``playwright install``).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 15.0

TEST_CATALOG = """\
datasets:
  - name: patients
    description: Synthetic patients
    label: restricted
    steward: {name: Dana Steward, email: dana@example.org}
    locations: [data/patients.csv]
"""


def _under_ci() -> bool:
    return bool(os.environ.get("CI"))


def _unavailable(reason: str) -> None:
    """Skip on a developer machine; fail under CI, where the UI tests must run."""
    if _under_ci():
        pytest.fail(f"UI tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


class LabServer:
    """A running ``jupyter lab`` subprocess."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, token: str, log: Path, catalog_dir: Path
    ) -> None:
        self.proc = proc
        self.port = port
        self.token = token
        self.log = log
        self.catalog_dir = catalog_dir
        self.base_url = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def log_tail(self) -> str:
        return _log_tail(self.log)

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = exc
            time.sleep(0.5)
        raise RuntimeError(
            f"jupyter lab did not answer within {timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL if it does not exit."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=SERVER_STOP_TIMEOUT)


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def ui_catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog directory with one dataset (``patients``, label ``restricted``)."""
    catalog = tmp_path_factory.mktemp("catalog")
    (catalog / "datasets.yaml").write_text(TEST_CATALOG, encoding="utf-8")
    return catalog


@pytest.fixture(scope="module")
def lab_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    ui_catalog_dir: Path,
) -> LabServer:
    """A real ``jupyter lab`` with the installed jupyter_guard, on a free port."""
    base = tmp_path_factory.mktemp("lab")
    root_dir = base / "root"
    (root_dir / "data").mkdir(parents=True)
    (root_dir / "data" / "patients.csv").write_text("id,name\n1,Synthetic Person\n")

    env = dict(os.environ)
    # Isolate the user's own config, settings and workspaces; sys.prefix and
    # JUPYTER_CONFIG_PATH / JUPYTER_PATH (where jupyter_guard is installed) still apply.
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
    )
    # Do not ask about the Jupyter news feed (a toast that would cover the screenshot).
    notification = base / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token = secrets.token_hex(16)
    port = _free_port()
    log = base / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--allow-root",
        "--no-browser",
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--GuardApp.catalog_dir={ui_catalog_dir}",
        # no traffic beyond loopback: no news feed, no update check
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # fixed argv, no shell
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    server = LabServer(proc, port, token, log, ui_catalog_dir)
    request.addfinalizer(server.stop)
    server.wait_until_ready(SERVER_START_TIMEOUT)
    return server


@pytest.fixture
def browser(chromium_executable: Path) -> Iterator[Any]:
    """Headless Debian Chromium driven by playwright's sync API.

    Function-scoped on purpose: playwright's sync API keeps its own event loop
    marked as running while it is open, so it must be set up after and torn
    down before pytest-jupyter's autouse ``jp_asyncio_loop`` (which would
    otherwise pick up and try to close playwright's loop).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(chromium_executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()
