"""A single-user server as the guard service's client, without a Hub (the service's token mode):
a real service process, a real jupyter_server with the extension, a real kernel. Identity is
the service's: a token it issued names the user, whatever the caller claims."""

from __future__ import annotations

import json
import textwrap

import pytest
from kernel_client import running_kernel
from service.service_helpers import call, guard_service

from jupyter_guard.service.identity import add_token

PATIENTS = textwrap.dedent("""\
    id,name,ssn,email
    1,Ann Lee,123-45-6789,ann.lee@example.com
    2,Bo Chan,234-56-7891,bo.chan@example.net
""")


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "service" / "tokens.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"file": str(path), "rita": add_token(str(path), "rita"), "dana": add_token(str(path), "dana")}


@pytest.fixture
def service(tmp_path, catalog_dir, jp_root_dir, tokens):
    (jp_root_dir / "data").mkdir(exist_ok=True)
    (jp_root_dir / "data" / "patients.csv").write_text(PATIENTS)
    config = f"""
        c.GuardService.auth = "token"
        c.GuardService.tokens_file = {tokens['file']!r}
        c.GuardService.root_dir = {str(jp_root_dir)!r}
        c.GuardSettings.catalog_dir = {str(catalog_dir)!r}
        c.GuardSettings.audit_dir = {str(tmp_path / 'service' / 'audit')!r}
        c.GuardSettings.roles = {{"researcher": {{"users": ["rita"]}}}}
    """
    with guard_service(tmp_path / "service", config) as (url, proc):
        yield url, proc


@pytest.fixture
def guard_config(guard_config, service, tokens):
    gc = guard_config["GuardApp"]
    del gc["audit_dir"]  # the server keeps no log of its own
    gc.update(service_url=service[0], service_token=tokens["rita"])
    return guard_config


def records(url, token, **params):
    from urllib.parse import urlencode

    status, page = call(url, "records?" + urlencode({"limit": "500", **params}), token)
    assert status == 200, page
    return page["records"]


async def test_reads_are_decided_and_recorded_by_the_service(service, tokens, jp_fetch, jp_ws_fetch, audit_dir, capsys):
    url, _ = service
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        res = await k.execute("import pandas as pd\ndf = pd.read_csv('data/patients.csv')\nprint(df.ssn.tolist(), df.email[0])",
                              cell_id="cell-read")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "123-45-6789" not in res.text and "PSN_" in res.text
    decisions = records(url, tokens["dana"], event_type="decision")
    assert [(r["user"], r["dataset"], r["decision"], r["cell_id"]) for r in decisions] == [
        ("rita", "patients", "redact", "cell-read")]
    # the server's own start is on the service's record too, with the guard loaded
    (started,) = records(url, tokens["dana"], event_type="server_started")
    assert started["user"] == "rita" and started["details"]["guard_loaded"] is True
    assert not audit_dir.exists()  # nothing of the log lives with the server
    status, verify = call(url, "verify", tokens["dana"])
    assert status == 200 and verify["ok"] and verify["checked"] >= 3
    # stewards' CLI reads the service's own config file (c.GuardSettings / c.GuardService sections)
    from jupyter_guard.cli import main

    config = str(audit_dir.parent / "service" / "jupyter_guard_service_config.py")
    assert main(["audit", "verify", "--config", config]) == 0
    assert main(["audit", "query", "--config", config, "--event-type", "decision", "--user", "rita"]) == 0
    out = capsys.readouterr().out
    assert "OK: " in out and "chain intact" in out and "rita" in out and "patients[restricted]" in out


def test_identity_comes_from_the_token_never_from_the_caller(service, tokens):
    url, _ = service
    status, rec = call(url, "records", tokens["rita"], {"event_type": "purpose", "user": "dana", "action": "x"})
    assert status == 201
    assert rec["user"] == "rita" and rec["details"]["claimed_user"] == "dana"
    status, _ = call(url, "records", tokens["rita"])  # researchers cannot query the log
    assert status == 403
    assert call(url, "whoami", "not-a-token")[0] == 403
    assert call(url, "decide", None, {"target": "data/patients.csv"})[0] == 401
    status, me = call(url, "whoami", tokens["dana"])
    assert (me["user"], me["steward"]) == ("dana", True)


def test_a_client_cannot_loosen_a_refusal(service, tokens, jp_root_dir):
    url, _ = service
    body = {"action": "read", "target": str(jp_root_dir / "data" / "patients.csv"), "kind": "path",
            "adjust": {"effect": "allow", "permitted": True, "reasons": ["trust me"]}}
    status, answer = call(url, "decide", tokens["rita"], body)  # no purpose: restricted read refused
    assert status == 403 and answer["effect"] != "allow" and "trust me" not in json.dumps(answer)
    status, answer = call(url, "decide", tokens["rita"], {**body, "purpose": "treatment-research"})
    assert status == 200 and answer["effect"] == "redact" and answer["user"] == "rita"
    assert [c["rule"] for c in answer["columns"]] == ["mask", "hash", "scan"]


async def test_the_service_down_makes_governed_reads_fail_closed(service, jp_fetch, jp_ws_fetch):
    _, proc = service
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        proc.terminate()
        proc.wait(20)
        res = await k.execute("import pandas as pd\ndf = pd.read_csv('data/patients.csv')\nprint(df.ssn.tolist())")
        assert res.error is not None and res.error["ename"] == "GuardDenied", res.text
        assert "guard service" in res.text and "does not answer" in res.text
        assert "123-45-6789" not in res.text


def test_service_workers_stop_with_their_parent(tmp_path, catalog_dir, tokens):
    """processes > 1: a SIGTERM reaches only the forking parent (a Hub-managed service, a plain
    kill); its workers must not serve on as orphans."""
    import os
    import time

    config = f"""
        c.GuardService.auth = "token"
        c.GuardService.tokens_file = {tokens['file']!r}
        c.GuardService.processes = 2
        c.GuardSettings.catalog_dir = {str(catalog_dir)!r}
        c.GuardSettings.audit_dir = {str(tmp_path / 'svc2' / 'audit')!r}
    """
    with guard_service(tmp_path / "svc2", config) as (url, proc):
        assert call(url, "whoami", tokens["rita"])[0] == 200
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == proc.pid]
        assert len(workers) == 2, workers
        proc.terminate()
        proc.wait(20)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{w}") and _ppid(w) != 0 for w in workers):
            assert time.monotonic() < deadline, "service workers outlived their parent"
            time.sleep(0.2)


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return 0  # a zombie has stopped
    return int(stat.rsplit(")", 1)[1].split()[1])
