"""Shared pieces of the gate tests: data, a notebook made by a real kernel, saved through the API."""

from __future__ import annotations

import asyncio
import html
import json
import textwrap

import nbformat
import pytest
from kernel_client import auth, running_kernel


@pytest.fixture
def guard_config(guard_config):
    """The gates are tested on notebooks whose saved outputs carry PII, as a notebook saved
    before the live output filter existed (or by a kernel the server does not see) does. The
    filter itself, which would have replaced that PII on its way to the browser, is tested in
    tests/kernel. (Imported by each gate test module: a conftest here would shadow the suite's.)"""
    guard_config["GuardApp"]["output_filter"] = "off"
    return guard_config

#: values the kernel prints from a literal (reads come back redacted, so the PII is put there directly)
PII = ["536-22-8174", "ann.lee@example.com", "bo.chan@example.net"]
PATIENTS = textwrap.dedent("""\
    id,name,ssn,email
    1,Ann Lee,536-22-8174,ann.lee@example.com
    2,Bo Chan,412-71-3302,bo.chan@example.net
""")
READ_CELL = (
    "import pandas as pd\n"
    "df = pd.read_csv('data/patients.csv')\n"
    "print(len(df))\n"
    "print('ssn ' + '536-22' + '-8174', 'mail ' + 'ann.lee' + '@example.com')\n"
)
PLAIN_CELL = "print('contact ' + 'bo.chan' + '@example.net')\nprint('nothing else')"
# (the values are assembled in code: the engine scans outputs, not sources)


def write_data(root) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "patients.csv").write_text(PATIENTS)


def to_output(out: dict):
    c = out["content"]
    if out["msg_type"] == "stream":
        return nbformat.v4.new_output("stream", name=c["name"], text=c["text"])
    if out["msg_type"] == "error":
        return nbformat.v4.new_output("error", ename=c["ename"], evalue=c["evalue"], traceback=c["traceback"])
    return nbformat.v4.new_output(out["msg_type"], data=c.get("data", {}), metadata=c.get("metadata", {}),
                                  execution_count=c.get("execution_count"))


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"order": "asc", "limit": "500", **params})
    return page["records"]


async def make_notebook(jp_fetch, jp_ws_fetch, fetch_json, path="analysis.ipynb", token="tok-rita") -> dict:
    """rita (or ``token``'s user) runs a governed read and a plain cell in a real kernel; the
    notebook is saved via PUT."""
    cells = []
    async with running_kernel(jp_fetch, jp_ws_fetch, path=path, token=token) as (_, k):
        await k.execute("%guard purpose treatment-research")
        for cell_id, code in (("cell-read", READ_CELL), ("cell-plain", PLAIN_CELL)):
            res = await k.execute(code, cell_id=cell_id)
            assert res.reply["content"]["status"] == "ok", res.text
            cell = nbformat.v4.new_code_cell(code, id=cell_id, execution_count=res.reply["content"]["execution_count"])
            cell.outputs = [to_output(o) for o in res.outputs]
            cells.append(cell)
        for _ in range(200):  # the cell record is written when the reply passes the server
            if any(r["cell_id"] == "cell-read" for r in await audit(fetch_json, event_type="cell_execution")):
                break
            await asyncio.sleep(0.05)
    nb = nbformat.v4.new_notebook(cells=cells)
    assert any(p in json.dumps(nb) for p in PII)  # the outputs really carry PII
    await jp_fetch("api", "contents", path, method="PUT", headers=auth(token),
                   body=json.dumps({"type": "notebook", "format": "json", "content": nb}))
    return nb


async def fetch_error(jp_fetch, *parts, token="tok-rita", **kw):
    from tornado.httpclient import HTTPClientError

    try:
        r = await jp_fetch(*parts, headers={**auth(token), **kw.pop("headers", {})}, **kw)
    except HTTPClientError as e:
        # HTML error pages escape the message: compare the text a person reads
        return e.code, html.unescape(e.response.body.decode("utf-8", "replace")) if e.response else ""
    return r.code, r.body.decode("utf-8", "replace")
