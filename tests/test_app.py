"""The extension inside a real jupyter_server: status, catalog, decide, audit, reloads, failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest
from conftest import DATASETS, auth, write_catalog
from tornado.httpclient import HTTPClientError

from jupyter_guard import __version__
from jupyter_guard.server.app import EVENT_SCHEMA_ID
from jupyter_guard.errors import AuditError, AuditKeyError, CatalogError


async def test_status_reports_version_catalog_and_roles(fetch_json):
    dana = await fetch_json("jupyter-guard", "api", "status", token="tok-dana")
    assert dana["version"] == __version__
    assert dana["user"] == {"name": "dana", "groups": ["data-stewards"], "roles": ["steward"], "steward": True}
    assert dana["catalog"]["datasets"] == 4
    assert dana["catalog"]["datasets_by_label"] == {"public": 1, "internal": 1, "confidential": 1, "restricted": 1}
    rita = await fetch_json("jupyter-guard", "api", "status", token="tok-rita")
    assert rita["user"]["roles"] == ["researcher"] and rita["user"]["steward"] is False


async def test_catalog_lists_what_the_user_may_discover_and_do(fetch_json):
    rita = await fetch_json("jupyter-guard", "api", "catalog", token="tok-rita")
    may = {d["name"]: d["may"] for d in rita["datasets"]}
    assert may["patients"]["read"] == "deny"  # redact needs a purpose: without one, deny
    assert may["hr"] == {"read": "redact", "export": "justify", "download": "deny"}
    assert may["clinics"]["read"] == "allow"
    with_purpose = await fetch_json("jupyter-guard", "api", "catalog", params={"purpose": "treatment-research"})
    assert {d["name"]: d["may"]["read"] for d in with_purpose["datasets"]}["patients"] == "redact"
    olaf = await fetch_json("jupyter-guard", "api", "catalog", token="tok-olaf")
    assert {d["name"] for d in olaf["datasets"]} == {"clinics", "hr"}  # no discover rule for the rest
    found = await fetch_json("jupyter-guard", "api", "catalog", token="tok-dana", params={"q": "ssn"})
    assert [d["name"] for d in found["datasets"]] == ["patients"]


def res_target(root) -> str:
    return str((root / "data" / "patients.csv").resolve())


async def test_resolve_sees_through_spelling(fetch_json, jp_root_dir):
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "patients.csv").write_text("id\n")
    os.symlink(jp_root_dir / "data" / "patients.csv", jp_root_dir / "copy.csv")
    for path in ("data/patients.csv", "data//./patients.csv", "copy.csv", "x/../data/patients.csv",
                 f"file://{jp_root_dir}/data/patients.csv"):
        res = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": path})
        assert (res["dataset"], res["label"]) == ("patients", "restricted"), path
        assert res["steward"] == "Dana Steward <dana@example.org>"
    res = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"table": "warehouse.hr.pay"})
    assert res["label"] == "confidential"
    # olaf may not discover the restricted dataset: resolving its path reveals nothing about it
    hidden = await fetch_json("jupyter-guard", "api", "catalog", "resolve", token="tok-olaf",
                              params={"path": "data/patients.csv"})
    assert (hidden["dataset"], hidden["label"], hidden["steward"], hidden["purposes"]) == (None, None, None, [])
    assert hidden["target"] == res_target(jp_root_dir)
    with pytest.raises(HTTPClientError) as err:
        await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "a", "uri": "s3://b/c"})
    assert err.value.code == 400


async def test_decide_records_before_answering_and_stewards_can_query(fetch_json, guard_app):
    body = {"target": "data/patients.csv", "action": "read", "kernel_id": "k1", "notebook": "analysis.ipynb",
            "cell_id": "c-7", "msg_id": "m-1"}
    denied = await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body, expect=403)
    assert denied["effect"] == "deny" and denied["permitted"] is False
    assert "rita may not read 'patients' (restricted data)" in denied["message"]
    assert "Dana Steward <dana@example.org>" in denied["message"]
    assert isinstance(denied["audit_seq"], int)
    allowed = await fetch_json("jupyter-guard", "api", "decide", method="POST",
                               body={**body, "purpose": "treatment-research", "msg_id": "m-2"})
    assert allowed["effect"] == "redact" and allowed["permitted"] is True
    assert allowed["audit_seq"] == denied["audit_seq"] + 1
    # an ungoverned, permitted read is not recorded
    free = await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "scratch.txt"})
    assert free["effect"] == "allow" and free["audit_seq"] is None

    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"user": "rita"})
    recs = page["records"]
    assert [r["seq"] for r in recs] == [allowed["audit_seq"], denied["audit_seq"]]  # newest first
    first = recs[1]
    assert first["event_type"] == "decision" and first["dataset"] == "patients" and first["label"] == "restricted"
    assert first["decision"] == "deny" and first["notebook"] == "analysis.ipynb" and first["cell_id"] == "c-7"
    assert first["target"].endswith("/data/patients.csv") and first["mac"]
    assert recs[0]["purpose"] == "treatment-research"
    verify = await fetch_json("jupyter-guard", "api", "audit", "verify", token="tok-dana")
    assert verify["ok"] is True and verify["checked"] >= 2


async def test_researchers_get_403_on_steward_routes(jp_fetch):
    for route in (("audit",), ("audit", "verify")):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("jupyter-guard", "api", *route, headers=auth("tok-rita"))
        assert err.value.code == 403


async def test_bad_decide_requests_get_400(fetch_json):
    for body in ({}, {"target": 3}, {"target": "x", "kind": "ftp"}, {"target": "x", "cell_id": 5},
                 {"target": "x", "purpose": ["a"]}, [1, 2]):
        with pytest.raises(HTTPClientError) as err:
            await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body)
        assert err.value.code == 400, body


KERNEL_ID = "0b8d1c39-5a4e-4f0e-9a57-4d6f3b1e2c7a"  # stands in for a route's (?P<kernel_id>...)


async def test_every_route_refuses_unauthenticated_requests(jp_serverapp, jp_fetch):
    from jupyter_guard.server.handlers import GuardHandler, default_handlers

    assert default_handlers, "no routes registered"
    checked = 0
    for pattern, handler in default_handlers:
        assert issubclass(handler, GuardHandler)
        for verb in ("get", "post", "put", "patch", "delete"):
            if getattr(handler, verb) is getattr(GuardHandler, verb):
                continue
            parts = re.sub(r"\(\?P<\w+>[^)]*\)", KERNEL_ID, pattern).strip("/").split("/")
            kwargs = {"method": verb.upper(), "headers": {"Authorization": "token wrong"}}
            if verb in ("post", "put", "patch"):
                kwargs["body"] = json.dumps({"target": "data/patients.csv"})
            with pytest.raises(HTTPClientError) as err:
                await jp_fetch(*parts, **kwargs)
            assert err.value.code in (401, 403), (pattern, verb, err.value.code)
            checked += 1
    assert checked >= len(default_handlers)


async def test_records_are_emitted_on_the_event_bus(fetch_json, jp_serverapp):
    seen = []

    async def listener(logger, schema_id, data):
        seen.append(data)

    jp_serverapp.event_logger.add_listener(schema_id=EVENT_SCHEMA_ID, listener=listener)
    reply = await fetch_json("jupyter-guard", "api", "decide", method="POST",
                             body={"target": "data/clinics.csv", "action": "read"})
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen and seen[0]["seq"] == reply["audit_seq"]
    # this test server is shared by several users (names from an identity provider, no Hub):
    # every subscriber gets every event, so events are slim — nothing about anyone's work
    assert set(seen[0]) == {"seq", "time", "event_type", "kernel_id"}


async def test_full_events_carry_the_whole_record(fetch_json, jp_serverapp, guard_app):
    seen = []

    async def listener(logger, schema_id, data):
        seen.append(data)

    guard_app.audit_events = "full"
    jp_serverapp.event_logger.add_listener(schema_id=EVENT_SCHEMA_ID, listener=listener)
    reply = await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "data/clinics.csv"})
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen[0]["seq"] == reply["audit_seq"] and seen[0]["dataset"] == "clinics" and seen[0]["mac"]


async def test_catalog_edits_reload_and_invalid_edits_keep_the_last_valid(guard_app, catalog_dir, fetch_json):
    more = DATASETS + "  - {name: extra, label: public, steward: S, locations: [extra.csv]}\n"
    (catalog_dir / "datasets.yaml").write_text(more)
    await guard_app.check_catalog()
    status = await fetch_json("jupyter-guard", "api", "status")
    assert status["catalog"]["datasets"] == 5 and status["catalog"]["error"] is None

    (catalog_dir / "datasets.yaml").write_text(more + "  - {name: broken, label: nope, steward: S, locations: [b]}\n")
    await guard_app.check_catalog()
    status = await fetch_json("jupyter-guard", "api", "status")
    assert status["catalog"]["datasets"] == 5  # last valid catalog kept
    assert "datasets.yaml:" in status["catalog"]["error"] and "unknown label 'nope'" in status["catalog"]["error"]
    reloads = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                               params={"event_type": "catalog_reload"})
    assert [r["decision"] for r in reloads["records"]] == ["error", "allow"]


def test_invalid_catalog_stops_the_server(tmp_path, jp_configurable_serverapp, guard_config):
    write_catalog(Path(guard_config["GuardApp"]["catalog_dir"]), datasets="datasets:\n  - {name: x, label: bogus}\n")
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert isinstance(stop.value.__cause__, CatalogError)
    assert "datasets.yaml:2: unknown label 'bogus'" in str(stop.value.__cause__)


def test_missing_catalog_dir_stops_the_server(tmp_path, jp_configurable_serverapp, guard_config):
    guard_config["GuardApp"]["catalog_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert "catalog directory does not exist" in str(stop.value.__cause__)


def test_corrupt_audit_store_stops_the_server(audit_dir, jp_configurable_serverapp, guard_config):
    audit_dir.mkdir(parents=True)
    (audit_dir / "audit.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert isinstance(stop.value.__cause__, AuditError)
    assert str(audit_dir / "audit.sqlite") in str(stop.value.__cause__)


def test_missing_audit_key_for_an_existing_log_stops_the_server(audit_dir, jp_configurable_serverapp, guard_config):
    from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
    from jupyter_guard.credentials import load_audit_key

    audit_dir.mkdir(parents=True)
    key = load_audit_key(key_file=str(audit_dir / "audit.key"), provider=None, key_name="k", create=True)
    with AuditLog(SQLiteAuditStore(path=str(audit_dir / "audit.sqlite")), key) as log:
        log.append(AuditEvent(event_type="decision", user="rita"))
    (audit_dir / "audit.key").unlink()  # a lost key must not silently start a new chain
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert isinstance(stop.value.__cause__, AuditKeyError)


def test_wrong_audit_key_stops_the_server(audit_dir, jp_configurable_serverapp, guard_config):
    from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore

    audit_dir.mkdir(parents=True)
    with AuditLog(SQLiteAuditStore(path=str(audit_dir / "audit.sqlite")), b"k" * 32) as log:
        log.append(AuditEvent(event_type="decision", user="rita"))
    (audit_dir / "audit.key").write_text("00" * 32)
    os.chmod(audit_dir / "audit.key", 0o600)
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert isinstance(stop.value.__cause__, AuditKeyError)
    assert "does not match" in str(stop.value.__cause__)


async def test_decisions_fail_closed_when_the_audit_store_breaks(fetch_json, guard_app, audit_dir):
    ok = await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "data/clinics.csv"})
    assert ok["permitted"] is True
    (audit_dir / "audit.sqlite").unlink()  # the store disappears under the running server
    with pytest.raises(HTTPClientError) as err:
        await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "data/clinics.csv"})
    assert err.value.code == 503
    reply = json.loads(err.value.response.body)
    assert reply["permitted"] is False and reply["effect"] == "deny"
    assert "audit log cannot record" in reply["message"]


def _traitlets(cfg: dict):
    from traitlets.config import Config

    return Config(cfg)


def test_under_jupyterhub_the_hub_user_and_groups_are_the_principal(guard_app, monkeypatch):
    from jupyter_server.auth.identity import User

    class HubUser(User):  # the shape of jupyterhub.singleuser's JupyterHubUser: a hub_user model dict
        def __init__(self, model):
            self.hub_user = model
            super().__init__(username=model["name"])

    guard_app.principal_source = "auto"
    monkeypatch.setenv("JUPYTERHUB_USER", "dana")
    who = guard_app.principal_for(HubUser({"name": "dana", "groups": ["data-stewards"]}))
    assert who.user == "dana" and who.groups == {"data-stewards"} and who.roles == {"steward"}
    monkeypatch.delenv("JUPYTERHUB_USER")
    import getpass

    assert guard_app.principal_for(HubUser({"name": "x", "groups": []})).user == getpass.getuser()


@pytest.fixture
def fast_reload(guard_config):
    guard_config["GuardApp"]["catalog_reload_interval"] = 0.1
    return guard_config


async def test_the_running_server_picks_up_catalog_edits_by_itself(fast_reload, jp_serverapp, guard_app, catalog_dir, fetch_json):
    # pytest-jupyter does not run extensions' start hooks; a real server does, in _post_start
    await jp_serverapp.extension_manager.start_all_extensions()
    assert guard_app._reloader is not None and guard_app._reloader.is_running()
    more = DATASETS + "  - {name: extra, label: public, steward: S, locations: [extra.csv]}\n"
    (catalog_dir / "datasets.yaml").write_text(more)
    for _ in range(100):
        status = await fetch_json("jupyter-guard", "api", "status")
        if status["catalog"]["datasets"] == 5:
            break
        await asyncio.sleep(0.05)
    assert status["catalog"]["datasets"] == 5


async def test_an_emptied_or_deleted_catalog_file_never_ungoverns_data(guard_app, catalog_dir, fetch_json):
    """Issue 14, finding 3: `: > datasets.yaml` (a truncate-then-write, a checkout) turned governance off."""
    body = {"target": "data/patients.csv"}
    before = await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body, expect=403)
    assert before["dataset"] == "patients"
    (catalog_dir / "datasets.yaml").write_text("")  # truncated mid-save
    await guard_app.check_catalog()
    status = await fetch_json("jupyter-guard", "api", "status")
    assert status["catalog"]["datasets"] == 4 and "the file is empty" in status["catalog"]["error"]
    still = await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body, expect=403)
    assert still["dataset"] == "patients" and still["audit_seq"] > before["audit_seq"]  # decided and recorded

    (catalog_dir / "datasets.yaml").unlink()  # deleted: a valid catalog without datasets... is no catalog
    await guard_app.check_catalog()
    assert "no dataset and no source" in (await fetch_json("jupyter-guard", "api", "status"))["catalog"]["error"]
    await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body, expect=403)


async def test_removing_datasets_waits_for_a_stable_catalog_and_is_recorded(guard_app, catalog_dir, fetch_json):
    guard_app.catalog_removal_delay = 0.3
    text = (catalog_dir / "datasets.yaml").read_text()
    without_clinics = text.replace(text[text.index("  - name: clinics"):text.index("  - name: hr")], "")
    (catalog_dir / "datasets.yaml").write_text(without_clinics)
    await guard_app.check_catalog()
    assert "clinics" in guard_app.governor.catalog.datasets  # held: it may be a moment mid-edit
    await asyncio.sleep(0.35)
    await guard_app.check_catalog()
    assert "clinics" not in guard_app.governor.catalog.datasets
    (catalog_dir / "datasets.yaml").write_text(text)  # adding back applies at once
    await guard_app.check_catalog()
    assert "clinics" in guard_app.governor.catalog.datasets
    reloads = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                               params={"event_type": "catalog_reload", "order": "asc"})
    assert [(r["details"]["added"], r["details"]["removed"]) for r in reloads["records"]] == [
        ([], ["clinics"]), (["clinics"], [])]


def test_an_empty_catalog_stops_the_server_unless_the_admin_says_so(jp_configurable_serverapp, guard_config):
    directory = Path(guard_config["GuardApp"]["catalog_dir"])
    (directory / "datasets.yaml").write_text("")
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert "the file is empty" in str(stop.value.__cause__)
    (directory / "datasets.yaml").unlink()
    with pytest.raises(SystemExit) as stop:
        jp_configurable_serverapp(config=_traitlets(guard_config))
    assert "no dataset and no source" in str(stop.value.__cause__)



async def test_the_server_records_that_it_started_with_the_guard(fetch_json, guard_app):
    """With a central store, stewards see which servers ran with the guard."""
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"event_type": "server_started"})
    (rec,) = page["records"]
    assert rec["details"]["guard_loaded"] is True and rec["details"]["version"] == __version__
    assert rec["details"]["datasets"] == 4 and rec["user"]
    await guard_app.record_server_event("server_stopped")  # what stop_extension records last
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"event_type": "server_stopped"})
    assert page["records"][0]["details"]["pid"] == os.getpid()
