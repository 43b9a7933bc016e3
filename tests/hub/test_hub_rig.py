"""The hub rig itself: a real JupyterHub whose users' servers and kernels run as their own OS
accounts, with groups from the Hub and the jupyter_guard extension loaded. One hub for the module."""

from __future__ import annotations

import os
import pwd
import signal
import sys

import pytest
from hub_rig import (
    GUARD,
    RITA,
    SAM,
    HubRig,
    RigError,
    cmdline,
    execute,
    free_port,
    http,
    pids_of_uid,
    proc_uid,
)

PROBE_PORT = free_port()
#: a Hub-managed service run as the guard's OS user, and an arg and env every server gets
PROBE = {"name": "probe", "url": f"http://127.0.0.1:{PROBE_PORT}", "user": GUARD,
         "command": [sys.executable, "-m", "http.server", str(PROBE_PORT), "--bind", "127.0.0.1"],
         "cwd": "/"}
ARG = "--ServerApp.terminals_enabled=False"


@pytest.fixture(scope="module")
def hub():
    rig = HubRig(services=[PROBE], roles=[{"name": "probe-reader", "scopes": ["read:users:name"],
                                          "services": ["probe"]}],
                 spawner_args=[ARG], spawner_env={"JG_RIG_MARK": "from-the-hub"})
    with rig:
        yield rig


@pytest.fixture(scope="module")
def servers(hub):
    """rita's and sam's servers, started together (they spawn in parallel)."""
    rita, sam = hub.start_servers([RITA, SAM])
    return {RITA: rita, SAM: sam}


def uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def test_the_hub_answers_with_the_configured_users_and_groups(hub):
    users = {u["name"]: u for u in hub.api("GET", "/users")}
    assert set(users) >= {hub.rita, hub.omar, hub.sam}
    assert sorted(users[hub.rita]["groups"]) == ["research"]
    assert sorted(users[hub.sam]["groups"]) == ["data-stewards"]
    assert hub.api("GET", "/")["version"] == "6.1.1"


def test_each_server_runs_as_its_users_own_uid(hub, servers):
    assert servers[RITA] == f"{hub.url}user/{RITA}/"
    for name in (RITA, SAM):
        assert proc_uid(hub.server_pid(name)) == uid(name)
    assert hub.server_pid(RITA) != hub.server_pid(SAM)


async def test_a_cell_in_ritas_kernel_runs_as_rita(hub, servers):
    text, error = await execute(servers[RITA], hub.token(RITA),
                                "import os, pandas; print(os.getuid(), os.getcwd(), os.environ['JG_RIG_MARK'])")
    assert error is None, text
    got_uid, cwd, mark = text.split()
    assert int(got_uid) == uid(RITA) and cwd == pwd.getpwnam(RITA).pw_dir
    assert mark == "from-the-hub"  # Spawner.environment reaches the kernel


async def test_a_token_opens_only_its_own_users_server(hub, servers):
    code, _ = await http("GET", f"{servers[SAM]}api/status", hub.token(RITA))
    assert code == 403
    code, _ = await http("GET", f"{servers[SAM]}api/status", hub.token(SAM))
    assert code == 200


def test_rita_cannot_read_sams_home(hub):
    secret = pwd.getpwnam(SAM).pw_dir + "/secret.txt"
    hub.run_as(SAM, ["sh", "-c", f"echo steward-only > {secret}"], check=True)
    assert hub.run_as(SAM, ["cat", secret]).stdout == "steward-only\n"
    denied = hub.run_as(RITA, ["cat", secret])
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert hub.run_as(RITA, ["id", "-u"]).stdout.strip() == str(uid(RITA))


def test_set_groups_changes_what_the_hub_reports(hub):
    hub.set_groups(hub.omar, ["research", "data-stewards", "auditors"])
    assert sorted(hub.user_model(hub.omar)["groups"]) == ["auditors", "data-stewards", "research"]
    hub.set_groups(hub.omar, [])
    assert hub.user_model(hub.omar)["groups"] == []
    hub.set_groups(hub.omar, ["research"])
    assert hub.user_model(hub.omar)["groups"] == ["research"]


async def test_the_guard_extension_is_loaded_and_sees_the_hub_user_and_groups(hub, servers):
    code, status = await http("GET", f"{servers[RITA]}jupyter-guard/api/status", hub.token(RITA))
    assert code == 200, status
    assert status["user"]["name"] == RITA, status
    assert "research" in status["user"]["groups"], status


def test_stop_server_after_a_sigkill_leaves_no_process_of_the_user(hub, servers):
    pid = hub.server_pid(SAM)
    os.kill(pid, signal.SIGKILL)
    hub.stop_server(SAM)
    servers.pop(SAM)
    assert SAM not in {u["name"] for u in hub.api("GET", "/users?state=active")}
    with pytest.raises(RigError):
        hub.server_pid(SAM)


async def test_spawner_args_reach_every_server(hub, servers):
    assert ARG in cmdline(hub.server_pid(RITA))
    code, _ = await http("GET", f"{servers[RITA]}api/terminals", hub.token(RITA))
    assert code == 404  # terminals off, as the arg says


def test_a_managed_service_runs_as_its_own_os_user_with_its_roles(hub):
    service = hub.api("GET", "/services/probe")
    assert service["roles"] == ["probe-reader"]
    assert proc_uid(service["pid"]) == uid(GUARD)
    assert "http.server" in cmdline(service["pid"])
    assert pids_of_uid(uid(GUARD)) == [service["pid"]]
