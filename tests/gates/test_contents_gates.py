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


async def test_a_server_side_copy_of_a_governed_data_file_is_governed_as_its_source(
        data, jp_fetch, fetch_json, guard_app):
    # rita may not read patients without a purpose: no copy, and no rename out of its location
    code, body = await fetch_error(jp_fetch, "api", "contents", "data", method="POST",
                                   body=json.dumps({"copy_from": "data/patients.csv"}))
    assert code == 403 and "Copy refused" in body and "Dana Steward" in body
    assert not (data / "data" / "patients-Copy1.csv").exists()
    code, _ = await fetch_error(jp_fetch, "api", "contents", "data/patients.csv", method="PATCH",
                                body=json.dumps({"path": "mine.csv"}))
    assert code == 403 and (data / "data" / "patients.csv").exists() and not (data / "mine.csv").exists()
    # the steward may: her copy is governed as patients, so rita cannot take it out raw
    r = await jp_fetch("api", "contents", "data", method="POST", headers=auth("tok-dana"),
                       body=json.dumps({"copy_from": "data/patients.csv"}))
    assert json.loads(r.body)["path"] == "data/patients-Copy1.csv"
    code, body = await fetch_error(jp_fetch, "files", "data", "patients-Copy1.csv")
    assert code == 403 and "patients" in body and not any(p in body for p in PII)
    code, _ = await fetch_error(jp_fetch, "api", "contents", "data/patients-Copy1.csv", params={"content": "1"})
    assert code == 403
    res = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "data/patients-Copy1.csv"})
    assert (res["dataset"], res["label"]) == ("patients", "restricted")
    # renaming the copy moves its governance along; the old name stays governed (conservative)
    await jp_fetch("api", "contents", "data/patients-Copy1.csv", method="PATCH", headers=auth("tok-dana"),
                   body=json.dumps({"path": "data/mine.csv"}))
    res = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "data/mine.csv"})
    assert res["dataset"] == "patients"
    code, _ = await fetch_error(jp_fetch, "files", "data", "mine.csv")
    assert code == 403
    # the steward still reads her copy raw, as she may the source
    raw = await jp_fetch("files", "data", "mine.csv", headers=auth("tok-dana"))
    assert PII[0].encode() in raw.body
    recs = [(r["user"], r["event_type"], r["decision"]) for r in await audit(fetch_json)
            if r["event_type"] in ("copy", "rename")]
    assert recs == [("rita", "copy", "deny"), ("rita", "rename", "deny"), ("dana", "copy", "allow"),
                    ("dana", "rename", "allow")]
    lineage = [(r["action"], r["dataset"], r["target"].rsplit("/", 2)[-2:], r["details"]["from"])
               for r in await audit(fetch_json, event_type="lineage")]
    assert lineage == [("copy", "patients", ["data", "patients-Copy1.csv"], "data/patients.csv"),
                       ("rename", "patients", ["data", "mine.csv"], "data/patients-Copy1.csv")]
    # a restart reads the copies back from those records
    governor = guard_app.governor
    governor.copies.clear()
    governor.swap(governor.loaded)
    assert governor.catalog.resolve("data/mine.csv", "path").dataset is None
    assert governor.restore_copies() == 2
    assert governor.catalog.resolve("data/mine.csv", "path").dataset.name == "patients"
    listed = {d["name"]: d for d in (await fetch_json("jupyter-guard", "api", "catalog", token="tok-dana"))["datasets"]}
    assert {"kind": "path", "location": governor.catalog.resolve("data/mine.csv", "path").target,
            "copied_from": "data/patients-Copy1.csv"} in listed["patients"]["locations"]


async def test_a_nul_in_a_path_is_a_400_not_a_500(data, jp_fetch):
    for parts in (("files", "data/a\x00b.csv"), ("api", "contents", "a\x00b.ipynb")):
        code, _ = await fetch_error(jp_fetch, *parts)
        assert code == 400, (parts, code)
