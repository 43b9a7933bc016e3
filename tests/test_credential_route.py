"""The kernel credential route, end to end: a real server, real kernels, the real audit store.

The kernel calls ``POST {JUPYTER_GUARD_URL}/credential`` with its token (as ``connect()``
does); the server decides, records, hands over the URL and secrets, and masks those secrets
in everything that kernel sends to the websocket client, in both protocols.
"""

from __future__ import annotations

import asyncio
import html
import json
import textwrap
from urllib.parse import quote_plus

import pytest
from kernel_client import V1, running_kernel

from jupyter_guard.masking import SecretMasker

PASSWORD = "zebra-Tr0ub@dor&3"  # @ and & change under URL quoting and HTML escaping
ENV_SECRET = "env-only-secret-value-9"

SOURCES = """\
sources:
  - name: warehouse
    description: Clinical warehouse
    url: postgresql+psycopg://{user}:{password}@127.0.0.1:5432/clinic
    credential: warehouse
    user: analyst
    label: internal
    steward: Ops Team <ops@example.org>
  - name: clinic
    url: sqlite:///{db}
    label: internal
    steward: Ops Team <ops@example.org>
  - name: ghost
    url: postgresql+psycopg://{user}:{password}@127.0.0.1:5432/ghost
    credential: ghost
    user: analyst
    label: internal
    steward: Ops Team <ops@example.org>
"""

CALL = """
import json, os, urllib.request, urllib.error
def guard_credential(body, token=None):
    req = urllib.request.Request(os.environ["JUPYTER_GUARD_URL"] + "/credential", data=json.dumps(body).encode(),
        headers={"X-Jupyter-Guard-Kernel": token or os.environ["JUPYTER_GUARD_TOKEN"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
def this_msg_id():
    return get_ipython().kernel.get_parent()["header"]["msg_id"]
"""


@pytest.fixture
def secrets_dir(tmp_path):
    d = tmp_path / "mounted-secrets"
    d.mkdir()
    (d / "warehouse").write_text(PASSWORD + "\n")
    return d


@pytest.fixture
def guard_config(guard_config, catalog_dir, secrets_dir, tmp_path, monkeypatch):
    db = tmp_path / "clinic.db"
    (catalog_dir / "sources.yaml").write_text(SOURCES.replace("{db}", str(db)))
    monkeypatch.setenv("JUPYTER_GUARD_SECRET_TOKEN", ENV_SECRET)  # in the server's env; never in kernels'
    guard_config["FileSecrets"] = {"directory": str(secrets_dir)}
    return guard_config


async def call(channel, body: dict) -> tuple[int, dict]:
    res = await channel.execute(f"print(json.dumps(guard_credential({body!r})))")
    assert res.error is None, res.text
    # the answer holds the secret, so the printed line is masked on the way out: parse what is left
    status, reply = json.loads(res.text)
    return status, reply


async def records(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"order": "asc", **params})
    return page["records"]


@pytest.mark.parametrize("protocol", [None, V1])
async def test_a_permitted_user_gets_the_url_and_the_secret_is_masked_in_every_output(
    protocol, jp_fetch, jp_ws_fetch, fetch_json, guard_app, audit_dir
):
    async with running_kernel(jp_fetch, jp_ws_fetch, token="tok-rita", protocol=protocol) as (kernel_id, channel):
        await channel.execute(CALL)
        res = await channel.execute(
            "st, r = guard_credential({'source': 'warehouse', 'msg_id': this_msg_id(), 'cell_id': 'cell-connect'})\n"
            "print(st, r['effect'], r['permitted'], r['audit_seq'] > 0, r['provider'], len(r['secrets']))\n"
            "print(r['url'])\n"
            "print(r['secrets'][0])\n"
            "r['secrets']\n",
            cell_id="cell-connect",
        )
        assert res.error is None, res.text
        lines = res.text.splitlines()
        assert lines[0] == "200 allow True True file 2"  # the password and its URL-quoted form
        # the URL the kernel got carries the quoted password; what reaches the client does not
        assert lines[1] == "postgresql+psycopg://analyst:***@127.0.0.1:5432/clinic"
        assert lines[2] == "***"
        assert PASSWORD not in res.text and quote_plus(PASSWORD) not in res.text
        assert "['***', '***']" in res.text  # the execute_result too
        binding = guard_app.kernel_bindings.by_kernel(kernel_id)
        assert binding.masker.secrets == {PASSWORD, quote_plus(PASSWORD)}

        # every kind of output, and a traceback, and the execute_reply of the failing cell
        res = await channel.execute(textwrap.dedent("""
            from IPython.display import HTML, display
            pw = r['secrets'][0]
            import sys; sys.stderr.write("stderr " + pw + "\\n")
            display(HTML("<b>" + __import__("html").escape(pw) + "</b>"))
            display({"text/plain": "plain " + pw, "application/json": {"k": pw, pw: 1}}, raw=True)
            raise RuntimeError("cannot connect with " + repr(pw))
        """))
        err = res.error
        assert err is not None and err["ename"] == "RuntimeError"
        shown = json.dumps(res.outputs) + json.dumps(res.reply)
        for form in (PASSWORD, quote_plus(PASSWORD), html.escape(PASSWORD), json.dumps(PASSWORD)[1:-1]):
            assert form not in shown, form
        assert "cannot connect with '***'" in err["evalue"]
        assert "stderr ***" in res.text and "<b>***</b>" in shown

        # the same kernel's other values are untouched
        res = await channel.execute("print('zebra and Tr0ub are fine')")
        assert res.text == "zebra and Tr0ub are fine\n"

        # the audit: a credential event (never the secret) and the cell's record with its code masked
        res = await channel.execute(f"note = {PASSWORD!r}  # pasted by mistake\nprint(len(note))", cell_id="cell-paste")
        assert res.text.strip() == str(len(PASSWORD))
        (rec,) = await records(fetch_json, event_type="credential")
        assert rec["user"] == "rita" and rec["action"] == "credential" and rec["target"] == "source:warehouse"
        assert rec["dataset"] == "warehouse" and rec["label"] == "internal" and rec["decision"] == "allow"
        assert rec["kernel_id"] == kernel_id and rec["notebook"] == "analysis.ipynb"
        assert rec["cell_id"] == "cell-connect" and rec["msg_id"] and rec["details"]["provider"] == "file"
        for _ in range(100):
            cells = await records(fetch_json, event_type="cell_execution")
            if any(c["cell_id"] == "cell-connect" for c in cells):
                break
            await asyncio.sleep(0.05)
        (cell,) = [c for c in cells if c["cell_id"] == "cell-connect"]
        assert cell["details"]["datasets"][0]["action"] == "credential"
    # the audit store's bytes (database, WAL, anchor) never hold the password, in any form
    for f in audit_dir.iterdir():
        data = f.read_bytes()
        for form in (PASSWORD, quote_plus(PASSWORD)):
            assert form.encode() not in data, f


async def test_a_denied_user_gets_the_message_and_no_secret(jp_fetch, jp_ws_fetch, fetch_json, guard_app):
    async with running_kernel(jp_fetch, jp_ws_fetch, token="tok-olaf", path="olaf.ipynb") as (kernel_id, channel):
        await channel.execute(CALL)
        status, reply = await call(channel, {"source": "warehouse", "msg_id": None, "cell_id": "c-1", "purpose": None})
        assert status == 403  # refused, and on the record
        assert reply["effect"] == "deny" and reply["permitted"] is False and reply["dataset"] == "warehouse"
        assert "url" not in reply and "secrets" not in reply
        assert reply["message"].startswith("olaf may not credential 'warehouse' (internal data): no policy rule allows")
        assert "Ops Team <ops@example.org>" in reply["message"]
        assert guard_app.kernel_bindings.by_kernel(kernel_id).masker.secrets == set()
    (rec,) = await records(fetch_json, event_type="credential", user="olaf")
    assert rec["decision"] == "deny" and rec["details"]["provider"] is None and rec["cell_id"] == "c-1"


async def test_unknown_source_missing_secret_rotation_and_no_secret_sources(
    jp_fetch, jp_ws_fetch, fetch_json, secrets_dir, guard_app
):
    async with running_kernel(jp_fetch, jp_ws_fetch, token="tok-rita") as (kernel_id, channel):
        await channel.execute(CALL)
        status, reply = await call(channel, {"source": "nope"})
        assert status == 404
        assert reply["message"] == "no data source 'nope' in the catalog; sources: clinic, ghost, warehouse"

        status, reply = await call(channel, {"source": "ghost"})
        assert status == 502
        assert "data source 'ghost'" in reply["message"] and str(secrets_dir) in reply["message"]
        assert "JUPYTER_GUARD_SECRET_GHOST" in reply["message"] and "url" not in reply

        status, reply = await call(channel, {"source": "clinic"})
        assert status == 200 and reply["url"].startswith("sqlite:///") and reply["secrets"] == []

        status, reply = await call(channel, {"source": "warehouse"})
        assert status == 200 and reply["secrets"] == ["***", "***"]
        (secrets_dir / "warehouse").write_text("rotated-Secret-42")  # rotated in the provider, no restart
        res = await channel.execute("print(guard_credential({'source': 'warehouse'})[1]['url'])")
        assert res.text.strip() == "postgresql+psycopg://analyst:***@127.0.0.1:5432/clinic"
        assert "rotated-Secret-42" in guard_app.kernel_bindings.by_kernel(kernel_id).masker.secrets

        status, reply = await call(channel, {"source": 7})
        assert status == 400
        res = await channel.execute("print(guard_credential({'source': 'warehouse'}, token='forged')[0])")
        assert res.text.strip() == "403"

        # secrets of the server's environment provider are not in the kernel's environment
        res = await channel.execute("import os; print(os.environ.get('JUPYTER_GUARD_SECRET_TOKEN'))")
        assert res.text.strip() == "None"
    errors = await records(fetch_json, event_type="credential", decision="error")
    assert [r["dataset"] for r in errors] == ["ghost"]
    assert any("data source 'ghost'" in reason for reason in errors[0]["reasons"])


def test_the_masker_rewrites_both_protocols_and_every_json_spelling():
    tricky = 'q"uo\\te-é-<&>'
    m = SecretMasker(frozenset({tricky, PASSWORD}))
    content = {"name": "stdout", "text": f"a {tricky} b {html.escape(PASSWORD)}", tricky: [PASSWORD]}
    for packed in (json.dumps(content).encode(), json.dumps(content, ensure_ascii=False).encode()):
        out = json.loads(m.frame(packed))
        assert out == {"name": "stdout", "text": "a *** b ***", "***": ["***"]}
    untouched = json.dumps({"text": "nothing here"}).encode()
    assert m.frame(untouched) is untouched  # no secret: the frame is passed on as it is
    assert m.obj({"data": {"text/plain": f"x{PASSWORD}y"}}) == {"data": {"text/plain": "x***y"}}
