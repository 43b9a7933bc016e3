"""Export and download gates with the test catalog's policy: restricted data is never exported by a
researcher (refused, with the message), a steward exports raw; every decision is on the record."""

from __future__ import annotations

import json

import pytest
from gate_helpers import PII, audit, fetch_error, make_notebook, write_data, guard_config  # noqa: F401
from kernel_client import auth


@pytest.fixture
def data(jp_root_dir):
    write_data(jp_root_dir)
    return jp_root_dir


async def test_restricted_notebook_export_is_refused_for_a_researcher_and_raw_for_a_steward(
        data, jp_fetch, jp_ws_fetch, fetch_json):
    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)

    sens = await fetch_json("jupyter-guard", "api", "notebook", "sensitivity", params={"path": "analysis.ipynb"})
    assert sens["label"] == "restricted"
    assert [d["dataset"] for d in sens["datasets"]] == ["patients"]
    assert sens["cells"]["cell-read"] == {"dataset": "patients", "label": "restricted"}
    assert sens["pii_in_outputs"].get("EMAIL_ADDRESS")

    for fmt in ("html", "markdown", "script", "notebook"):
        code, body = await fetch_error(jp_fetch, "nbconvert", fmt, "analysis.ipynb")
        assert code == 403, (fmt, body)
        assert "Restricted data does not leave the workspace" in body and "Dana Steward" in body
        assert not any(p in body for p in PII)

    r = await jp_fetch("nbconvert", "html", "analysis.ipynb", headers=auth("tok-dana"))
    assert PII[0] in r.body.decode()  # stewards export raw, by policy

    records = await audit(fetch_json, event_type="export")
    assert [(r["user"], r["decision"], r["details"]["format"]) for r in records] == [
        ("rita", "deny", "html"), ("rita", "deny", "markdown"), ("rita", "deny", "script"),
        ("rita", "deny", "notebook"), ("dana", "allow", "html")]
    assert all(r["notebook"] == "analysis.ipynb" and r["label"] == "restricted" for r in records)
    assert not any(p in json.dumps(records) for p in PII)

    # the Download of the notebook file and the contents API's raw read are downloads too
    code, body = await fetch_error(jp_fetch, "files", "analysis.ipynb", params={"download": "1"})
    assert code == 403 and "rita may not download" in body
    code, _ = await fetch_error(jp_fetch, "api", "contents", "analysis.ipynb", params={"format": "text", "type": "file"})
    assert code == 403
    # opening one's own notebook in the editor is not an export
    r = await jp_fetch("api", "contents", "analysis.ipynb", headers=auth("tok-rita"))
    model = json.loads(r.body)
    assert model["content"]["metadata"]["jupyter_guard"]["sensitivity"]["label"] == "restricted"
    flags = {c["id"]: c["metadata"].get("jupyter_guard", {}).get("pii_outputs") for c in model["content"]["cells"]}
    assert flags == {"cell-read": [0], "cell-plain": [0]}  # flag mode marks, keeps
    assert PII[0] in json.dumps(model["content"]["cells"][0]["outputs"])
    downloads = await audit(fetch_json, event_type="download")
    assert [(r["user"], r["decision"]) for r in downloads] == [("rita", "deny"), ("rita", "deny")]


async def test_metadata_claiming_public_does_not_lower_the_label(data, jp_fetch, jp_ws_fetch, fetch_json):
    nb = await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    nb.metadata["jupyter_guard"] = {"sensitivity": {"label": "public", "datasets": []}}
    body = {"name": "analysis.ipynb", "path": "analysis.ipynb", "content": nb}
    code, text = await fetch_error(jp_fetch, "nbconvert", "html", method="POST", body=json.dumps(body))
    assert code == 403 and "Restricted data" in text


async def test_a_restricted_csv_download_is_refused_for_a_researcher_and_allowed_for_a_steward(data, jp_fetch, fetch_json):
    code, body = await fetch_error(jp_fetch, "files", "data", "patients.csv")
    assert code == 403
    assert "rita may not download 'patients' (restricted data)" in body and "dana@example.org" in body
    r = await jp_fetch("files", "data", "patients.csv", headers=auth("tok-dana"))
    assert PII[0] in r.body.decode()
    # opening the CSV in JupyterLab (contents GET) is a read: redact for researchers = not served raw
    code, body = await fetch_error(jp_fetch, "api", "contents", "data", "patients.csv",
                                   headers={"X-Jupyter-Guard-Purpose": "treatment-research"})
    assert code == 403 and "only redacted" in body and PII[0] not in body
    code, body = await fetch_error(jp_fetch, "api", "contents", "data", "patients.csv")  # no purpose: denied
    assert code == 403 and "purpose" in body
    r = await jp_fetch("api", "contents", "data", "patients.csv", headers=auth("tok-dana"))
    assert PII[0] in json.loads(r.body)["content"]
    # listing the directory is not a read of the file
    await jp_fetch("api", "contents", "data", headers=auth("tok-rita"))
    recs = await audit(fetch_json, dataset="patients")
    assert [(r["event_type"], r["user"], r["action"], r["decision"]) for r in recs] == [
        ("download", "rita", "download", "deny"), ("download", "dana", "download", "allow"),
        ("decision", "rita", "read", "deny"), ("decision", "rita", "read", "deny"),
        ("decision", "dana", "read", "allow")]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"name": "x.ipynb"}', b'{"content": {"cells": "nope"}}',
    b'{"content": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}}',
    b"\xff\xfe\xfa", json.dumps({"content": {"a": [[[[[[[]]]]]]]}}).encode(),
])
async def test_malformed_notebook_bodies_are_4xx(body, data, jp_fetch):
    code, text = await fetch_error(jp_fetch, "nbconvert", "html", method="POST", body=body)
    assert 400 <= code < 500, (code, text)


async def test_nbformat_3_and_broken_files_on_disk(data, jp_root_dir, jp_fetch, fetch_json):
    import nbformat

    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_code_cell("print(1)", outputs=[nbformat.v3.new_output("stream", output_text="mail ann.lee@example.com\n")])])])
    (jp_root_dir / "old.ipynb").write_text(json.dumps(v3))
    (jp_root_dir / "broken.ipynb").write_bytes(b'{"cells": [\xff')
    code, body = await fetch_error(jp_fetch, "nbconvert", "html", "old.ipynb")
    # PII in outputs counts as confidential: export needs a justification under the test policy
    assert code == 403 and "justification" in body and PII[1] not in body
    r = await jp_fetch("nbconvert", "html", "old.ipynb", headers={**auth("tok-rita"),
                       "X-Jupyter-Guard-Justification": "shared with the ethics board"})
    assert PII[1] in r.body.decode()  # justify permits: the policy's effect, recorded with the reason
    code, body = await fetch_error(jp_fetch, "nbconvert", "html", "broken.ipynb")
    assert code == 422 and "cannot be read as a notebook" in body
    recs = await audit(fetch_json, event_type="export")
    assert [r["decision"] for r in recs] == ["deny", "justify", "deny"]
    assert recs[1]["justification"] == "shared with the ethics board"
