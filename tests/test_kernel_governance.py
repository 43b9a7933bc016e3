"""The notebook's governance indicator: GET kernels/<id> and POST kernels/<id>/purpose, with real
kernels started by the real server and cells run over the websocket, as JupyterLab does."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import DATASETS, POLICY, auth, write_catalog
from kernel_client import KernelChannel, running_kernel
from tornado.httpclient import HTTPClientError

from jupyter_guard.server.bindings import MAX_DENIALS, KernelBinding
from jupyter_guard.policy import Decision

LABELS = """\
labels:
  - {name: public, color: "#2e7d32"}
  - internal
  - {name: confidential, color: "#d9822b"}
  - {name: restricted, color: "#c62828"}
"""

CALL_API = """
import json, os, urllib.request
def guard_call(route, body=None):
    req = urllib.request.Request(os.environ["JUPYTER_GUARD_URL"] + "/" + route,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-Jupyter-Guard-Kernel": os.environ["JUPYTER_GUARD_TOKEN"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # a refusal (403) carries the decision
        if e.code != 403:
            raise
        return json.loads(e.read())
"""

READ_PATIENTS = "import pandas as pd\ndf = pd.read_csv('data/patients.csv')\nprint(df.ssn[0])"


@pytest.fixture
def catalog_dir(tmp_path):
    d = write_catalog(tmp_path / "catalog", DATASETS, POLICY)
    (d / "labels.yaml").write_text(LABELS)
    return d


@pytest.fixture
def data(jp_root_dir):
    (jp_root_dir / "data").mkdir(exist_ok=True)
    (jp_root_dir / "data" / "patients.csv").write_text("id,ssn\n1,123-45-6789\n")
    (jp_root_dir / "data" / "clinics.csv").write_text("id,city\n1,Springfield\n")
    return jp_root_dir


def kernel_route(kernel_id, *more):
    return ("jupyter-guard", "api", "kernels", kernel_id, *more)


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"order": "asc", **params})
    return page["records"]


async def error_of(call) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as err:
        await call
    return err.value.code, json.loads(err.value.response.body)["message"]


async def test_the_indicator_follows_what_the_kernel_reads_and_the_purpose_set_from_the_toolbar(
    data, jp_fetch, jp_ws_fetch, fetch_json
):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        gov = await fetch_json(*kernel_route(kernel_id))
        assert gov == {
            "kernel_id": kernel_id, "notebook": "analysis.ipynb", "guarded": True, "purpose": None,
            "purposes": ["treatment-research"], "highest": None, "datasets": [], "denials": [], "version": 0,
        }

        # restricted data needs a purpose: refused, and the refusal says whom to ask
        res = await k.execute(READ_PATIENTS, cell_id="cell-denied")
        assert res.error and res.error["ename"] == "GuardDenied"
        denied = await fetch_json(*kernel_route(kernel_id))
        assert denied["version"] > gov["version"] and denied["highest"] is None
        (denial,) = denied["denials"]
        assert (denial["dataset"], denial["label"], denial["effect"]) == ("patients", "restricted", "deny")
        assert denial["ask"] == "Dana Steward <dana@example.org>"
        assert denial["cell_id"] == "cell-denied" and denial["msg_id"] == res.msg_id
        assert denial["target"].endswith("/data/patients.csv") and denial["time"].endswith("Z")
        assert "needs a declared purpose" in denial["message"] and "contact Dana Steward <dana@example.org>" in denial["message"]
        assert denial["message"] in res.error["evalue"]  # what the kernel said, word for word
        assert any("needs a declared purpose" in r for r in denial["reasons"])
        (record,) = [r for r in await audit(fetch_json, event_type="decision", dataset="patients") if r["seq"] == denial["audit_seq"]]
        assert record["decision"] == "deny" and record["msg_id"] == res.msg_id
        assert denied["datasets"] == [{"dataset": "patients", "label": "restricted", "rank": 3,
                                       "effects": {"deny": 1}, "last_seq": denial["audit_seq"]}]

        # a purpose the kernel puts in its own request does not count: the server holds the purpose
        await k.execute(CALL_API)
        res = await k.execute("print(guard_call('decide', {'target': 'data/patients.csv', 'purpose': 'treatment-research'})['effect'])")
        assert res.text.strip() == "deny"

        res = await k.execute("print(pd.read_csv('data/clinics.csv').city[0])")
        assert res.text.strip() == "Springfield"
        public = await fetch_json(*kernel_route(kernel_id))
        assert public["highest"] == {"label": "public", "rank": 0, "color": "#2e7d32"}

        # the toolbar sets the purpose: recorded, and the kernel's next read is decided under it
        set_ = await fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", body={"purpose": "treatment-research"})
        assert set_["purpose"] == "treatment-research" and set_["version"] == public["version"] + 1
        (declared,) = await audit(fetch_json, event_type="purpose")
        assert (declared["user"], declared["action"], declared["purpose"]) == ("rita", "declare_purpose", "treatment-research")
        assert declared["kernel_id"] == kernel_id and declared["notebook"] == "analysis.ipynb"
        assert declared["details"] == {"previous": None, "via": "ui"}
        res = await k.execute(READ_PATIENTS, cell_id="cell-read")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "123-45-6789" not in res.text and "6789" in res.text  # redacted (masked) under the purpose
        read = await fetch_json(*kernel_route(kernel_id))
        assert read["version"] > set_["version"]
        assert read["highest"] == {"label": "restricted", "rank": 3, "color": "#c62828"}
        patients = read["datasets"][0]
        assert (patients["dataset"], patients["effects"]) == ("patients", {"deny": 2, "redact": 1})
        assert [d["dataset"] for d in read["datasets"]] == ["patients", "clinics"]  # most sensitive first
        (redacted,) = [r for r in await audit(fetch_json, event_type="decision", dataset="patients") if r["seq"] == patients["last_seq"]]
        assert redacted["decision"] == "redact" and redacted["purpose"] == "treatment-research"

        # the kernel sees the server's purpose, and setting it there is recorded the same way
        res = await k.execute("%guard purpose")
        assert "Purpose of this session: treatment-research" in res.text
        res = await k.execute("%guard status")
        assert "treatment-research" in res.text
        res = await k.execute("%guard purpose --clear")
        assert "withdrawn" in res.text
        cleared = await fetch_json(*kernel_route(kernel_id))
        assert cleared["purpose"] is None and cleared["version"] == read["version"] + 1
        declared = await audit(fetch_json, event_type="purpose")
        assert [(r["purpose"], r["details"]) for r in declared] == [
            ("treatment-research", {"previous": None, "via": "ui"}),
            (None, {"previous": "treatment-research", "via": "kernel"}),
        ]
        assert {r["user"] for r in declared} == {"rita"} and {r["kernel_id"] for r in declared} == {kernel_id}
        res = await k.execute(READ_PATIENTS)
        assert res.error and res.error["ename"] == "GuardDenied"  # withdrawn: refused again
        again = await fetch_json(*kernel_route(kernel_id))
        assert len(again["denials"]) == 3 and again["version"] > cleared["version"]  # with guard_call's
        assert again["highest"]["label"] == "restricted"  # what the kernel holds is still restricted data


async def test_a_restart_starts_the_indicator_afresh_and_a_shutdown_ends_the_binding(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        res = await k.execute("import pandas as pd\nprint(pd.read_csv('data/clinics.csv').city[0])")
        assert res.text.strip() == "Springfield"
        before = await fetch_json(*kernel_route(kernel_id))
        assert [d["dataset"] for d in before["datasets"]] == ["clinics"]
        await fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", body={"purpose": "treatment-research"})

        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}", headers=auth("tok-rita"))
        after = await fetch_json(*kernel_route(kernel_id))
        assert after["datasets"] == [] and after["highest"] is None and after["denials"] == []
        assert after["version"] > before["version"]
        assert after["purpose"] == "treatment-research"  # the session's declaration outlives a restart
    # the context deleted the kernel: its governance and its token are gone
    code, _ = await error_of(fetch_json(*kernel_route(kernel_id)))
    assert code == 404


async def test_a_crashed_kernel_restarted_by_the_server_starts_the_indicator_afresh(
    data, jp_fetch, jp_ws_fetch, fetch_json, jp_serverapp
):
    import asyncio
    import signal

    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        res = await k.execute("import pandas as pd\nprint(pd.read_csv('data/clinics.csv').city[0])")
        assert res.text.strip() == "Springfield"
        before = await fetch_json(*kernel_route(kernel_id))
        assert [d["dataset"] for d in before["datasets"]] == ["clinics"]
        # a crash: the server's restarter (not restart_kernel) brings the kernel back
        await jp_serverapp.kernel_manager.get_kernel(kernel_id).signal_kernel(signal.SIGKILL)
        for _ in range(300):
            after = await fetch_json(*kernel_route(kernel_id))
            if after["version"] > before["version"]:
                break
            await asyncio.sleep(0.1)
        assert after["datasets"] == [] and after["highest"] is None, after
        kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        for _ in range(300):  # let the restart finish: jupyter_client cannot shut down a kernel mid-restart
            if kernel.ready.done():
                break
            await asyncio.sleep(0.1)


async def test_only_the_kernels_user_may_see_or_set_its_governance(data, jp_fetch, jp_ws_fetch, fetch_json, audit_dir):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        for token, name in (("tok-dana", "dana"), ("tok-olaf", "olaf")):  # a steward too: it is rita's kernel
            code, message = await error_of(fetch_json(*kernel_route(kernel_id), token=token))
            assert code == 403 and message.startswith(f"{name} may not see or change the governance of kernel {kernel_id}")
            code, _ = await error_of(fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", token=token,
                                                body={"purpose": "treatment-research"}))
            assert code == 403
        assert (await fetch_json(*kernel_route(kernel_id)))["purpose"] is None
        assert await audit(fetch_json, event_type="purpose") == []

        code, message = await error_of(fetch_json(*kernel_route("5b0c7a52-0000-4000-8000-000000000000")))
        assert (code, message) == (404, "no running kernel 5b0c7a52-0000-4000-8000-000000000000")
        code, _ = await error_of(fetch_json(*kernel_route("nope", "purpose"), method="POST", body={"purpose": None}))
        assert code == 404
        # the kernel's own token is not a browser user: the user routes do not take it
        res = await k.execute("import os; print(os.environ['JUPYTER_GUARD_TOKEN'])")
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch(*kernel_route(kernel_id), headers={"X-Jupyter-Guard-Kernel": res.text.strip()})
        assert err.value.code == 403

        for body in ({"purpose": "bad/name"}, {"purpose": 5}, {"purpose": ""}, [1]):
            code, _ = await error_of(fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", body=body))
            assert code == 400, body
        assert (await fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", body={}))["purpose"] is None

        (audit_dir / "audit.sqlite").unlink()  # the audit store breaks: the purpose does not change unaudited
        code, message = await error_of(fetch_json(*kernel_route(kernel_id, "purpose"), method="POST",
                                                  body={"purpose": "treatment-research"}))
        assert code == 503 and f"the purpose of kernel {kernel_id} was not changed: the audit log cannot record it" in message
        res = await k.execute("%guard purpose treatment-research")
        assert "UsageError: the purpose could not be set or read" in res.text and "audit log cannot record" in res.text
        assert (await fetch_json(*kernel_route(kernel_id)))["purpose"] is None


@pytest.fixture
def other_kernel(jp_data_dir):
    """A kernel spec that is not an IPython kernel as far as the server can tell (language 'other')."""
    spec = jp_data_dir / "kernels" / "other"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Other", "language": "other",
    }))
    return "other"


async def test_a_kernel_without_the_guard_is_shown_unguarded(data, other_kernel, jp_fetch, jp_ws_fetch, fetch_json):
    body = {"path": "plain.ipynb", "type": "notebook", "name": "plain.ipynb", "kernel": {"name": other_kernel}}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body), headers=auth("tok-rita"))
    kernel_id = json.loads(r.body)["kernel"]["id"]
    channel = await KernelChannel.open(jp_ws_fetch, kernel_id, token="tok-rita")
    try:
        res = await channel.execute("print(open('data/patients.csv').read().count('\\n'))")
        assert res.text.strip() == "2"  # not guarded: nothing asks the server
        gov = await fetch_json(*kernel_route(kernel_id))
        assert gov["guarded"] is False and gov["notebook"] == "plain.ipynb"
        assert (gov["datasets"], gov["denials"], gov["highest"]) == ([], [], None)
        gov = await fetch_json(*kernel_route(kernel_id, "purpose"), method="POST", body={"purpose": "treatment-research"})
        assert gov["purpose"] == "treatment-research" and gov["guarded"] is False  # stamped on its cell records
    finally:
        channel.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE", headers=auth("tok-rita"))


def decision(effect, permitted, dataset="patients", label="restricted", **kw):
    return Decision(effect=effect, permitted=permitted, action="read", user="rita", target="/r/x.csv",
                    dataset=dataset, label=label, reasons=("why.",), ask="Dana <d@x.org>", **kw)


def test_a_binding_keeps_counts_the_last_refusals_and_what_was_permitted():
    b = KernelBinding("k", None, guardable=True)
    b.note(decision("justify", False), rank=3, audit_seq=1, msg_id="m1", cell_id=None)
    b.note(decision("allow", True, dataset="clinics", label="public"), rank=0, audit_seq=2, msg_id="", cell_id="c")
    gov = b.governance(notebook=None, purposes=[], color_of=lambda name: name.upper())
    assert gov["highest"] == {"label": "public", "rank": 0, "color": "PUBLIC"}  # a refused justify holds nothing
    assert [d["effects"] for d in gov["datasets"]] == [{"justify": 1}, {"allow": 1}]
    assert [(d["effect"], d["msg_id"], d["cell_id"]) for d in gov["denials"]] == [("justify", "m1", None)]
    b.note(decision("justify", True), rank=3, audit_seq=3, msg_id="m2", cell_id=None)
    b.note(decision("allow", True, dataset="warehouse", label="confidential"), rank=2, audit_seq=4, msg_id="m3",
           cell_id=None, effect="error")  # a credential the provider could not hand out: not a refusal, holds nothing
    b.note(decision("deny", False, dataset=None, label=None), rank=-1, audit_seq=5, msg_id="m4", cell_id=None)
    gov = b.governance(notebook=None, purposes=[], color_of=lambda name: "")
    assert gov["highest"]["label"] == "restricted" and gov["version"] == 5
    assert [(d["dataset"], d["effects"], d["last_seq"]) for d in gov["datasets"]] == [
        ("patients", {"justify": 2}, 3), ("warehouse", {"error": 1}, 4), ("clinics", {"allow": 1}, 2)]
    assert [d["dataset"] for d in gov["denials"]] == ["patients", None]  # an ungoverned refusal has no dataset
    for i in range(MAX_DENIALS + 5):
        b.note(decision("deny", False), rank=3, audit_seq=10 + i, msg_id=f"x{i}", cell_id=None)
    denials = b.governance(notebook=None, purposes=[], color_of=str)["denials"]
    assert len(denials) == MAX_DENIALS and denials[-1]["audit_seq"] == 10 + MAX_DENIALS + 4  # the newest, last
    version = b.version
    b.set_purpose("p")
    b.set_purpose("p")
    assert b.version == version + 1  # only a change counts
