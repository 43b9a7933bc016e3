"""Issue 14, findings 1 and 2: on a server shared by several users, the contents API gave
another user's notebook with raw outputs, and a server-side copy of a governed data file was
downloadable raw. Both now pass the same gates as /files and /nbconvert, on the record."""

from __future__ import annotations

import json

import pytest
from gate_helpers import PII, audit, fetch_error, make_notebook, write_data, guard_config  # noqa: F401
from kernel_client import auth


@pytest.fixture
def data(jp_root_dir):
    write_data(jp_root_dir)
    return jp_root_dir


async def test_another_users_governed_notebook_is_gated_on_the_contents_api(data, jp_fetch, jp_ws_fetch, fetch_json):
    await make_notebook(jp_fetch, jp_ws_fetch, fetch_json, path="dana.ipynb", token="tok-dana")
    own = await jp_fetch("api", "contents", "dana.ipynb", headers=auth("tok-dana"))
    assert PII[0] in own.body.decode()  # her own notebook opens as it is

    code, body = await fetch_error(jp_fetch, "api", "contents", "dana.ipynb", params={"content": "1"})
    assert code == 403 and "rita may not download 'patients'" in body and not any(p in body for p in PII)
    (rec,) = [r for r in await audit(fetch_json, event_type="download") if r["notebook"] == "dana.ipynb"]
    assert (rec["user"], rec["decision"]) == ("rita", "deny")

    # a copy and a rename keep the notebook's history: still gated for rita
    r = await jp_fetch("api", "contents", method="POST", headers=auth("tok-dana"),
                       body=json.dumps({"copy_from": "dana.ipynb"}))
    copied = json.loads(r.body)["path"]
    await jp_fetch("api", "contents", copied, method="PATCH", headers=auth("tok-dana"),
                   body=json.dumps({"path": "renamed.ipynb"}))
    code, body = await fetch_error(jp_fetch, "api", "contents", "renamed.ipynb")
    assert code == 403 and not any(p in body for p in PII)
    code, _ = await fetch_error(jp_fetch, "nbconvert", "html", "renamed.ipynb")
    assert code == 403
    lineage = await audit(fetch_json, event_type="lineage")
    assert [(r["action"], r["details"]["from"], r["target"]) for r in lineage] == [
        ("copy", "dana.ipynb", copied), ("rename", copied, "renamed.ipynb")]


async def test_a_server_side_copy_of_a_governed_data_file_is_decided_like_a_download(data, jp_fetch, fetch_json):
    code, body = await fetch_error(jp_fetch, "api", "contents", "data", method="POST",
                                   body=json.dumps({"copy_from": "data/patients.csv"}))
    assert code == 403 and "Copy refused" in body and "Dana Steward" in body
    assert not (data / "data" / "patients-Copy1.csv").exists()
    code, _ = await fetch_error(jp_fetch, "api", "contents", "data/patients.csv", method="PATCH",
                                body=json.dumps({"path": "mine.csv"}))
    assert code == 403 and (data / "data" / "patients.csv").exists() and not (data / "mine.csv").exists()
    # the steward may take it out raw, so she may copy it; both refusals and the copy are on the record
    r = await jp_fetch("api", "contents", "data", method="POST", headers=auth("tok-dana"),
                       body=json.dumps({"copy_from": "data/patients.csv"}))
    assert json.loads(r.body)["path"] == "data/patients-Copy1.csv"
    recs = [(r["user"], r["event_type"], r["decision"]) for r in await audit(fetch_json)
            if r["event_type"] in ("copy", "rename")]
    assert recs == [("rita", "copy", "deny"), ("rita", "rename", "deny"), ("dana", "copy", "allow")]


async def test_a_nul_in_a_path_is_a_400_not_a_500(data, jp_fetch):
    for parts in (("files", "data/a\x00b.csv"), ("api", "contents", "a\x00b.ipynb")):
        code, _ = await fetch_error(jp_fetch, *parts)
        assert code == 400, (parts, code)
