"""A real JupyterHub on loopback, with real OS users, for the guard-service tests.

No mocks: a `jupyterhub` process (this venv's), configurable-http-proxy, DummyAuthenticator
with an allow list, LocalProcessSpawner starting `jupyterhub-singleuser` as each user's own
OS account, and the Hub's REST API driven with a test-only admin service token.

Needs root (it creates OS users and the Hub spawns servers as them) and
`configurable-http-proxy` on PATH; a missing precondition is a `RigError` naming the fix,
never a skip. .ci/run installs the proxy and opens /root for the interpreter.

    with HubRig(spawner_args=["--GuardApp.catalog_dir=/srv/catalog"]) as hub:
        base = hub.start_server(hub.rita)
        text, error = asyncio.run(execute(base, hub.token(hub.rita), "print(1)"))
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

#: every OS account the rig makes starts with this, so it never touches a real user
PREFIX = "jg-"
RITA, OMAR, SAM = f"{PREFIX}rita", f"{PREFIX}omar", f"{PREFIX}sam"
GUARD = f"{PREFIX}guard"  # the guard service's own account: no login shell, own home
RESEARCHERS = (RITA, OMAR)
STEWARDS = (SAM,)
DEFAULT_GROUPS = {"research": list(RESEARCHERS), "data-stewards": list(STEWARDS)}

#: what the rig's own service token may do on the Hub's REST API
ADMIN_SCOPES = ["admin:users", "admin:servers", "tokens", "admin:groups", "list:users",
                "read:users", "read:groups", "list:groups", "read:services", "list:services",
                "read:roles"]
ADMIN_SERVICE = "rig-admin"

#: marks a home the rig created; a same-named account without it is not ours, and is refused
MARKER = ".jg-hub-rig"
SINGLEUSER = "jupyterhub-singleuser"


class RigError(RuntimeError):
    """A precondition of the rig is missing, or the Hub did not do what was asked."""


# ---------------------------------------------------------------------------------------------
# preconditions


def venv_bin() -> Path:
    """The bin dir of the running interpreter's venv (not resolved: the symlink is the venv's)."""
    return Path(sys.executable).parent


def check_preconditions() -> None:
    """Raise RigError with the fix for the first missing precondition."""
    if os.geteuid() != 0:
        raise RigError("the hub rig must run as root: it creates OS users (useradd) and the Hub "
                       "spawns single-user servers as them (setuid)")
    for tool in ("useradd", "runuser"):
        if not shutil.which(tool):
            raise RigError(f"the hub rig needs {tool!r} on PATH (Debian package 'passwd'/'util-linux')")
    if not shutil.which("configurable-http-proxy"):
        raise RigError("configurable-http-proxy is not on PATH; install it with "
                       "`npm install -g configurable-http-proxy@5.3.0` (.ci/run does)")
    for name in ("jupyterhub", SINGLEUSER):
        if not os.access(venv_bin() / name, os.X_OK):
            raise RigError(f"{venv_bin() / name} is missing: pip install 'jupyterhub==6.1.1' "
                           "into this venv (the project's test extra has it)")
    open_interpreter_path()


def _blocking_dirs(path: Path) -> list[Path]:
    """Ancestors of ``path`` that other users cannot traverse (no o+x)."""
    blocked = []
    for parent in [*reversed(path.parents)]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            blocked.append(parent)
    return blocked


def open_interpreter_path() -> None:
    """Make the venv's interpreter reachable by the rig's OS users, or say why it is not.

    The venv's python is a symlink into /root/.pyenv, and /root is 0700 on the CI machine:
    no other user could exec it, so no single-user server could start. Running as root, the
    rig adds o+x (traverse only, no listing) to /root, as .ci/run does; that is acceptable on
    a throwaway test machine only. Any other closed directory is reported, not opened.
    """
    targets = [Path(os.path.realpath(sys.executable)), venv_bin(), Path(__file__).resolve()]
    for target in targets:
        for d in _blocking_dirs(target):
            if d == Path("/root") and os.geteuid() == 0:
                os.chmod(d, os.stat(d).st_mode | stat.S_IXOTH)
            else:
                raise RigError(f"{d} is not traversable by other users (needs o+x), so the "
                               f"rig's users cannot reach {target}")


# ---------------------------------------------------------------------------------------------
# OS users


def ensure_user(name: str, *, login: bool = True, fresh: bool = True) -> pwd.struct_passwd:
    """An OS account ``name`` with its own 0700 home; made if missing (idempotent).

    ``fresh`` empties a home the rig made before (marked), so runs do not see each other's
    files. An existing account the rig did not make is refused, not reused.
    """
    if not name.startswith(PREFIX):
        raise RigError(f"rig users must start with {PREFIX!r}: {name!r}")
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        shell = "/bin/bash" if login else "/usr/sbin/nologin"
        subprocess.run(["useradd", "-m", "-U", "-s", shell, name], check=True,
                       capture_output=True, text=True)
        pw = pwd.getpwnam(name)
        Path(pw.pw_dir, MARKER).touch()
    home = Path(pw.pw_dir)
    if not (home / MARKER).exists():
        raise RigError(f"OS user {name} exists but was not made by the hub rig (no {home / MARKER}); "
                       "remove it or pick another prefix")
    if fresh:
        for child in home.iterdir():
            if child.name == MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        for skel in Path("/etc/skel").glob(".*"):  # the shell dotfiles useradd -m gave it
            if skel.is_file():
                shutil.copy(skel, home / skel.name)
                os.chown(home / skel.name, pw.pw_uid, pw.pw_gid)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o700)
    os.chown(home / MARKER, pw.pw_uid, pw.pw_gid)
    return pw


def pids_of_uid(uid: int) -> list[int]:
    """Pids of live processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{entry}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            if int(uid_line.split()[1]) == uid:
                found.append(int(entry))
    return found


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid``, from /proc/<pid>/cmdline."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


def proc_uid(pid: int) -> int:
    """The real uid of ``pid``, from /proc/<pid>/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _children(pid: int) -> list[int]:
    """All descendants of ``pid`` (by PPid), including those in new sessions."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, StopIteration):
                status = Path(f"/proc/{entry}/status").read_text()
                parents[int(entry)] = int(next(line for line in status.splitlines()
                                               if line.startswith("PPid:")).split()[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


def _kill(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# the hub


class HubRig:
    """A real JupyterHub with the rig's OS users. Use ``with HubRig(...) as hub:``.

    Parameters (all optional):
      services:       extra ``c.JupyterHub.services`` entries (dicts: name, command, url, user,
                      environment, api_token, oauth_no_confirm, ...)
      roles:          extra ``c.JupyterHub.load_roles`` entries
      spawner_args:   extra command-line args of every single-user server (``c.Spawner.args``,
                      e.g. ``--GuardApp.service_url=...``): they beat users' own config files
      spawner_env:    ``c.Spawner.environment`` of every single-user server
      extra_config:   free-form lines appended to jupyterhub_config.py
      groups:         group -> user names (default: research = rita, omar; data-stewards = sam)
      users:          the Hub's users (default: rita, omar, sam); each is made as an OS user
    """

    rita, omar, sam, guard = RITA, OMAR, SAM, GUARD

    def __init__(self, *, services: list[dict] | None = None, roles: list[dict] | None = None,
                 spawner_args: list[str] | None = None, spawner_env: dict | None = None,
                 extra_config: str = "", groups: dict | None = None,
                 users: list[str] | None = None, timeout: float = 60):
        self.services = list(services or [])
        self.roles = list(roles or [])
        self.spawner_args = list(spawner_args or [])
        self.spawner_env = dict(spawner_env or {})
        self.extra_config = extra_config
        self.groups = {g: list(u) for g, u in (groups or DEFAULT_GROUPS).items()}
        self.users = list(users or [RITA, OMAR, SAM])
        self.timeout = timeout
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.admin_token = secrets.token_hex(24)
        self.proxy_port = self.hub_port = self.api_port = 0
        self._final_log = ""
        self._descendants: set[int] = set()

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The public URL (the proxy): ``http://127.0.0.1:<proxy>/``."""
        return f"http://127.0.0.1:{self.proxy_port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}/hub/api"

    def start(self) -> HubRig:
        check_preconditions()
        for name in [*self.users, GUARD]:  # a crashed run's leftovers would hold files and ports
            with contextlib.suppress(KeyError):
                _kill(pids_of_uid(pwd.getpwnam(name).pw_uid))
        for name in self.users:
            ensure_user(name)
        ensure_user(GUARD, login=False)
        self._check_users_can_run_the_venv()
        try:
            self._start_hub()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_users_can_run_the_venv(self) -> None:
        probe = "import jupyter_guard, jupyterhub, pandas; print(jupyter_guard.__file__)"
        for name in [self.users[0], GUARD]:
            r = self.run_as(name, [sys.executable, "-c", probe])
            if r.returncode:
                raise RigError(f"OS user {name} cannot run the venv's interpreter with "
                               f"jupyter_guard ({sys.executable}): {r.stderr.strip()[-800:]}")

    def _start_hub(self) -> None:
        # 0755 so services running as jg-guard may use the hub's cwd; secrets are 0600
        self.dir = Path(tempfile.mkdtemp(prefix="jg-hub-"))
        os.chmod(self.dir, 0o755)
        self.proxy_port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        config = self.dir / "jupyterhub_config.py"
        config.write_text(self.config_text())
        config.chmod(0o600)
        with open(self.dir / "hub.log", "wb") as log:  # the hub keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [str(venv_bin() / "jupyterhub"), "-f", str(config)],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise RigError(f"jupyterhub exited with {self.proc.returncode}:\n{self.hub_log()[-4000:]}")
            with contextlib.suppress(OSError, RigError):  # 404/503 until the hub's route is up
                # through the proxy: both the proxy and the hub answer, and our token works
                if self.api("GET", "/user")["name"] == ADMIN_SERVICE:
                    break
            if time.monotonic() > deadline:
                raise RigError(f"jupyterhub did not answer on {self.api_url} within "
                               f"{self.timeout}s:\n{self.hub_log()[-4000:]}")
            time.sleep(0.25)
        self._remember_children()

    def _remember_children(self) -> None:
        """Note the hub's children now: if the hub dies, they are orphans stop() must still find
        (the proxy, servers and services run in sessions of their own)."""
        if self.proc is not None:
            self._descendants |= set(_children(self.proc.pid))

    def config_text(self) -> str:
        bin_dir = venv_bin()
        services = [{"name": ADMIN_SERVICE, "api_token": self.admin_token}, *self.services]
        roles = [{"name": ADMIN_SERVICE, "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE]},
                 *self.roles]
        groups = {g: {"users": u} for g, u in self.groups.items()}
        d = self.dir
        text = f"""\
        # written by tests/hub/hub_rig.py
        c = get_config()  # noqa
        c.JupyterHub.bind_url = "http://127.0.0.1:{self.proxy_port}"
        c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
        c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(24)!r}
        c.ConfigurableHTTPProxy.pid_file = {str(d / "proxy.pid")!r}
        c.ConfigurableHTTPProxy.command = [{shutil.which("configurable-http-proxy")!r}]
        c.JupyterHub.pid_file = {str(d / "hub.pid")!r}
        c.JupyterHub.db_url = "sqlite:///{d / "jupyterhub.sqlite"}"
        c.JupyterHub.cookie_secret_file = {str(d / "cookie_secret")!r}
        c.JupyterHub.cleanup_servers = True
        c.JupyterHub.cleanup_proxy = True
        c.JupyterHub.authenticator_class = "dummy"
        c.Authenticator.allowed_users = {set(self.users)!r}
        c.JupyterHub.load_groups = {groups!r}
        c.JupyterHub.services = {services!r}
        c.JupyterHub.load_roles = {roles!r}
        c.JupyterHub.spawner_class = "localprocess"
        c.Spawner.cmd = [{str(bin_dir / SINGLEUSER)!r}]
        c.Spawner.args = {self.spawner_args!r}
        c.Spawner.environment = {self.spawner_env!r}
        c.Spawner.default_url = "/lab"
        c.Spawner.notebook_dir = "~"
        c.Spawner.http_timeout = 60
        c.Spawner.start_timeout = 60
        """
        return textwrap.dedent(text) + "\n" + textwrap.dedent(self.extra_config) + "\n"

    def stop(self) -> None:
        """Stop the hub, the proxy, every server and service, and every process of the rig's
        OS users; safe to call twice and after a failed start."""
        if self.proc is not None:
            self._remember_children()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # the hub stops servers and the proxy
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self._descendants |= set(_children(self.proc.pid))
                    _kill([self.proc.pid])
                    self.proc.wait(timeout=10)
        if self.dir is not None:
            with contextlib.suppress(OSError, ValueError):
                self._descendants.add(int((self.dir / "proxy.pid").read_text()))
        for _ in range(3):  # again: a dying server may still fork (kernels)
            leftovers = set(self._descendants)
            for name in [*self.users, GUARD]:
                with contextlib.suppress(KeyError):
                    leftovers |= set(pids_of_uid(pwd.getpwnam(name).pw_uid))
            leftovers.discard(os.getpid())
            if not leftovers:
                break
            _kill(leftovers)
            time.sleep(0.2)
            self._descendants = {p for p in self._descendants if Path(f"/proc/{p}").exists()}
        if self.dir is not None:  # the log stays readable through hub_log()
            self._final_log = self.hub_log()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def hub_log(self) -> str:
        """Everything the hub (and the proxy and servers it started) printed so far."""
        if self.dir is None or not (self.dir / "hub.log").exists():
            return self._final_log
        return (self.dir / "hub.log").read_text(errors="replace")

    # -- REST API -------------------------------------------------------------------------

    def api(self, method: str, path: str, body=None, token: str | None = None,
            ok=(200, 201, 202, 204)):
        """One call to the Hub's REST API (``path`` under /hub/api); the JSON answer or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api_url + path, data=data, method=method, headers={
            "Authorization": f"token {token or self.admin_token}",
            "Content-Type": "application/json",
        })
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            with e:
                status, raw = e.code, e.read()
        if status not in ok:
            raise RigError(f"{method} /hub/api{path} -> {status}: {raw.decode(errors='replace')[:500]}")
        return json.loads(raw) if raw.strip() else None

    def user_model(self, user: str) -> dict:
        return self.api("GET", f"/users/{urllib.parse.quote(user)}")

    def token(self, user: str, scopes: list[str] | None = None, note: str = "hub rig") -> str:
        """A new API token of ``user`` (their own permissions unless ``scopes`` narrows them)."""
        body = {"note": note, "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        return self.api("POST", f"/users/{urllib.parse.quote(user)}/tokens", body)["token"]

    def server_url(self, user: str) -> str:
        return f"http://127.0.0.1:{self.proxy_port}/user/{urllib.parse.quote(user)}/"

    def start_server(self, user: str, timeout: float | None = None) -> str:
        """Start ``user``'s default server; wait until the Hub says it is ready; its base URL."""
        return self.start_servers([user], timeout)[0]

    def start_servers(self, users: list[str], timeout: float | None = None) -> list[str]:
        """Start several users' servers at once (they spawn in parallel); their base URLs."""
        for user in users:
            self.api("POST", f"/users/{urllib.parse.quote(user)}/server")
        deadline = time.monotonic() + (timeout or self.timeout + 30)
        waiting = list(users)
        while waiting:
            for user in list(waiting):
                server = self.user_model(user).get("servers", {}).get("")
                if server and server.get("ready"):
                    waiting.remove(user)
                elif not server or server.get("stopped"):
                    raise RigError(f"{user}'s server stopped while starting:\n{self.hub_log()[-4000:]}")
            if waiting and time.monotonic() > deadline:
                raise RigError(f"servers of {waiting} not ready in time:\n{self.hub_log()[-4000:]}")
            if waiting:
                time.sleep(0.3)
        self._remember_children()
        return [self.server_url(u) for u in users]

    def stop_server(self, user: str, timeout: float | None = None) -> None:
        """Stop ``user``'s default server; wait until the Hub no longer lists it."""
        self.api("DELETE", f"/users/{urllib.parse.quote(user)}/server")
        deadline = time.monotonic() + (timeout or self.timeout)
        while self.user_model(user).get("servers", {}).get(""):
            if time.monotonic() > deadline:
                raise RigError(f"{user}'s server did not stop:\n{self.hub_log()[-4000:]}")
            time.sleep(0.3)

    def set_groups(self, user: str, groups: list[str]) -> None:
        """Make ``user`` a member of exactly ``groups`` (creating missing groups)."""
        wanted = set(groups)
        existing = {g["name"]: g for g in self.api("GET", "/groups")}
        for name in wanted - set(existing):
            self.api("POST", f"/groups/{urllib.parse.quote(name)}")
            existing[name] = {"name": name, "users": []}
        for name, group in existing.items():
            path = f"/groups/{urllib.parse.quote(name)}/users"
            if name in wanted and user not in group["users"]:
                self.api("POST", path, {"users": [user]})
            elif name not in wanted and user in group["users"]:
                self.api("DELETE", path, {"users": [user]})

    # -- processes ------------------------------------------------------------------------

    def run_as(self, user: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """``subprocess.run(argv)`` as OS user ``user`` (text, captured, in their home unless
        ``cwd`` is given); the CompletedProcess, whatever its exit code."""
        pw = pwd.getpwnam(user)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", pw.pw_dir)
        kw.setdefault("stdin", subprocess.DEVNULL)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": pw.pw_dir, "USER": user,
               "LOGNAME": user, "LANG": os.environ.get("LANG", "C.UTF-8")}
        if "PYTHONPATH" in os.environ:  # as the spawner's env_keep passes it to servers
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update(kw.pop("env", None) or {})
        kw["env"] = env
        check = kw.pop("check", False)
        return subprocess.run(["runuser", "-u", user, "--", *argv], check=check, **kw)

    def server_pid(self, user: str) -> int:
        """The pid of ``user``'s single-user server (a process of their uid running
        jupyterhub-singleuser); RigError if there is none."""
        uid = pwd.getpwnam(user).pw_uid
        for pid in sorted(pids_of_uid(uid)):
            with contextlib.suppress(OSError):
                if any(os.path.basename(a) == SINGLEUSER for a in cmdline(pid)[:2]):
                    return pid
        raise RigError(f"no {SINGLEUSER} process of {user} (uid {uid})")


# ---------------------------------------------------------------------------------------------
# running code in a user's real kernel, through the proxy


def _kernel_client():
    try:
        import kernel_client
    except ImportError:  # outside pytest: tests/ is not on sys.path
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import kernel_client
    return kernel_client


async def http(method: str, url: str, token: str, body=None):
    """One request with the user's token: (status, parsed JSON or text)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    kwargs = {"method": method, "headers": {"Authorization": f"token {token}"},
              "request_timeout": 60, "follow_redirects": False}
    if body is not None or method in ("POST", "PUT", "PATCH"):
        kwargs["body"] = json.dumps(body or {})
    try:
        r = await AsyncHTTPClient().fetch(url, **kwargs)
        code, raw = r.code, r.body
    except HTTPClientError as e:
        if e.response is None:
            raise
        code, raw = e.code, e.response.body or b""
    text = raw.decode(errors="replace")
    with contextlib.suppress(ValueError):
        return code, json.loads(text)
    return code, text


@contextlib.asynccontextmanager
async def kernel(base_url: str, token: str, path: str = "analysis.ipynb"):
    """A session's kernel on the server at ``base_url`` and a channel to it (kernel_client's
    KernelChannel: ``await channel.execute(code)`` -> CellResult); both closed afterwards."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    kc = _kernel_client()
    code, session = await http("POST", f"{base_url}api/sessions", token, {
        "path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}})
    if code != 201:
        raise RigError(f"POST {base_url}api/sessions -> {code}: {session}")
    kernel_id = session["kernel"]["id"]
    ws_url = f"{base_url.replace('http://', 'ws://', 1)}api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"},
                                             request_timeout=60))
    channel = kc.KernelChannel(ws, None)
    try:
        yield channel
    finally:
        channel.close()
        await http("DELETE", f"{base_url}api/sessions/{session['id']}", token)


async def execute(base_url: str, token: str, code: str, path: str = "analysis.ipynb",
                  timeout: float = 120) -> tuple[str, dict | None]:
    """Run ``code`` in a fresh session's kernel of ``path``: (its text output, its error or None)."""
    async with kernel(base_url, token, path) as channel:
        result = await channel.execute(code, timeout=timeout)
    return result.text, result.error
