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

#: The UI catalog: a restricted dataset researchers read redacted under a purpose, a
#: confidential one they may not read (a denial naming its steward), a public one and an
#: internal folder of files.
TEST_CATALOG = """\
datasets:
  - name: patients
    description: Synthetic patient registry
    label: restricted
    steward: {name: Dana Steward, email: dana@example.org}
    locations: [data/patients.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
    purposes: [treatment-research]
  - name: salaries
    description: Staff salaries
    label: confidential
    steward: {name: Hana HR, email: hana@example.org}
    locations: [hr/salaries.csv]
  - name: visits
    description: Clinic visits
    label: internal
    steward: {name: Ops Team, email: ops@example.org}
    locations: [data/visits/*.csv]
  - name: clinics
    description: Public list of clinics
    label: public
    steward: {name: Ops Team, email: ops@example.org}
    locations: [data/clinics.csv]
"""

TEST_POLICY = """\
roles:
  steward: {users: [dana]}
  researcher: {groups: [research]}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - name: stewards
    roles: [steward]
    effect: allow
    check_purpose: false
  - name: public-open
    labels: [public]
    effect: allow
  - name: internal-researchers
    labels: [internal]
    roles: [researcher]
    effect: allow
  - name: restricted-read
    labels: [restricted]
    actions: [read, discover]
    roles: [researcher]
    effect: redact
    require_purpose: true
  - name: restricted-export
    labels: [restricted]
    actions: [export, download]
    roles: [researcher]
    effect: redact
  - name: confidential-discover
    labels: [confidential]
    actions: [discover]
    effect: allow
"""

PATIENTS_CSV = """\
id,name,ssn,email,diagnosis
1,Maria Gonzalez,123-45-6789,maria.gonzalez@example.com,asthma
2,John Carter,987-65-4320,john.carter@example.net,diabetes
"""

UI_DIR = Path(__file__).resolve().parent


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
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        token: str,
        log: Path,
        catalog_dir: Path,
        root_dir: Path,
    ) -> None:
        self.proc = proc
        self.port = port
        self.token = token
        self.log = log
        self.catalog_dir = catalog_dir
        self.root_dir = root_dir
        self.base_url = f"http://127.0.0.1:{port}"

    def url(self, path: str, token: str | None = None) -> str:
        """``path`` on this server, logged in with ``token`` (default: the server's own)."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={token or self.token}"

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
    """The UI catalog and policy (see TEST_CATALOG, TEST_POLICY)."""
    catalog = tmp_path_factory.mktemp("catalog")
    (catalog / "datasets.yaml").write_text(TEST_CATALOG, encoding="utf-8")
    (catalog / "policy.yaml").write_text(TEST_POLICY, encoding="utf-8")
    return catalog


def write_workspace(root_dir: Path) -> None:
    """The files the catalog governs (synthetic values only), plus an ungoverned one."""
    (root_dir / "data" / "visits").mkdir(parents=True)
    (root_dir / "hr").mkdir()
    (root_dir / "data" / "patients.csv").write_text(PATIENTS_CSV)
    (root_dir / "data" / "clinics.csv").write_text("clinic,city\nNorth,Springfield\n")
    (root_dir / "data" / "visits" / "2026-01.csv").write_text("clinic,visits\nNorth,12\n")
    (root_dir / "hr" / "salaries.csv").write_text("employee,salary\nE1,50000\n")
    (root_dir / "README.txt").write_text("not governed\n")


def start_lab(
    request: pytest.FixtureRequest,
    base: Path,
    catalog_dir: Path,
    *,
    audit_dir: Path | None = None,
) -> LabServer:
    """Start a real ``jupyter lab`` with the installed jupyter_guard on a free port.

    Users come from tests/ui/lab_users.py (``?token=tok-dana`` is the steward, ``tok-rita``
    the researcher); the app is exposed as ``window.jupyterapp`` so tests can run commands.
    """
    root_dir = base / "root"
    root_dir.mkdir(parents=True, exist_ok=True)
    write_workspace(root_dir)

    env = dict(os.environ)
    # Isolate the user's own config, settings and workspaces; sys.prefix and
    # JUPYTER_CONFIG_PATH / JUPYTER_PATH (where jupyter_guard is installed) still apply.
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(UI_DIR), env.get("PYTHONPATH")])),
    )
    # Do not ask about the Jupyter news feed (a toast that would cover the screenshot).
    notification = base / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
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
        "--ServerApp.identity_provider_class=lab_users.LabUsers",
        f"--GuardApp.catalog_dir={catalog_dir}",
        f"--GuardApp.audit_dir={audit_dir or base / 'audit'}",
        "--GuardApp.principal_source=identity",
        # the export review is shown on a notebook whose outputs carry PII; the live output
        # filter (tested in tests/kernel) would have replaced it on its way to the page
        "--GuardApp.output_filter=off",
        "--LabApp.expose_app_in_browser=True",
        # no traffic beyond loopback: no news feed, no update check
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # fixed argv, no shell
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    server = LabServer(proc, port, token, log, catalog_dir, root_dir)
    request.addfinalizer(server.stop)
    server.wait_until_ready(SERVER_START_TIMEOUT)
    return server


@pytest.fixture(scope="module")
def lab_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    ui_catalog_dir: Path,
) -> LabServer:
    """A real ``jupyter lab`` with the installed jupyter_guard and the UI catalog."""
    return start_lab(request, tmp_path_factory.mktemp("lab"), ui_catalog_dir)


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


#: Size of the audit log of the audit viewer benchmark (the issue's figure: 1,000,000);
#: JUPYTER_GUARD_UI_AUDIT_EVENTS makes it smaller for a quick local run, never under CI.
BIG_LOG_EVENTS = 1_000_000


def big_log_events() -> int:
    if _under_ci():
        return BIG_LOG_EVENTS
    return int(os.environ.get("JUPYTER_GUARD_UI_AUDIT_EVENTS", BIG_LOG_EVENTS))


@pytest.fixture(scope="module")
def big_audit_lab(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    ui_catalog_dir: Path,
) -> tuple[LabServer, dict]:
    """A lab whose audit log holds ``big_log_events()`` sealed records (benchmarks/bench_audit.py's
    generator: 100 users, 200 datasets, realistic decisions) and a key file the server accepts."""
    sys.path.insert(0, str(UI_DIR.parents[1] / "benchmarks"))
    try:
        import bench_audit
    finally:
        sys.path.pop(0)
    base = tmp_path_factory.mktemp("biglab")
    audit_dir = base / "audit"
    audit_dir.mkdir()
    key_file = audit_dir / "audit.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(bench_audit.KEY.hex())
    built = bench_audit.build_big_log(str(audit_dir / "audit.sqlite"), big_log_events())
    return start_lab(request, base, ui_catalog_dir, audit_dir=audit_dir), built
