"""The routes the JupyterLab UI uses: catalog listing and file badges, access requests, audit export.

A real jupyter_server with jupyter_guard; the JSON shapes are those of labextension/src/tokens.ts.
"""

from __future__ import annotations

import json

import pytest
from conftest import DATASETS, POLICY, auth, write_catalog
from tornado.httpclient import HTTPClientError

from jupyter_guard.cli import main as cli

LABELS = """\
labels:
  - {name: public, color: "#2e7d32", description: Anyone may see it}
  - internal
  - {name: confidential, color: "#d9822b"}
  - {name: restricted, color: "#c62828", description: Named people only}
"""

MORE_DATASETS = """\
  - name: archive
    label: confidential
    steward: Ops Team <ops@example.org>
    locations: [archive/]
"""

SOURCES = """\
sources:
  - name: warehouse
    description: Clinical warehouse
    url: postgresql+psycopg://{user}:{password}@127.0.0.1:5432/clinic
    credential: warehouse
    user: analyst
    label: confidential
    steward: Dana Steward <dana@example.org>
  - name: registry
    url: sqlite:////srv/registry.db
    label: restricted
    steward: {name: Rex Registry, email: rex@example.org}
    purposes: [treatment-research]
"""

SOURCE_RULE = """\
rules:
  - name: warehouse-for-researchers
    datasets: [warehouse]
    actions: [credential]
    roles: [researcher]
    effect: allow
"""

ACCESS_REQUESTS = ("jupyter-guard", "api", "access-requests")


@pytest.fixture
def catalog_dir(tmp_path):
    d = write_catalog(tmp_path / "catalog", DATASETS + MORE_DATASETS, POLICY.replace("rules:\n", SOURCE_RULE, 1))
    (d / "labels.yaml").write_text(LABELS)
    (d / "sources.yaml").write_text(SOURCES)
    return d


@pytest.fixture
def files(jp_root_dir):
    (jp_root_dir / "data" / "visits").mkdir(parents=True)
    (jp_root_dir / "archive" / "2020").mkdir(parents=True)
    for name in ("data/patients.csv", "data/clinics.csv", "data/visits/2024.csv", "archive/2020/old.csv", "notes.txt"):
        (jp_root_dir / name).write_text("id\n1\n")
    (jp_root_dir / "scratch").mkdir()
    return jp_root_dir


async def error_of(call) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as err:
        await call
    return err.value.code, json.loads(err.value.response.body)["message"]


# -- GET catalog -------------------------------------------------------------------------------


async def test_catalog_lists_labels_as_objects_sources_and_purposes(fetch_json):
    rita = await fetch_json("jupyter-guard", "api", "catalog", token="tok-rita")
    assert rita["labels"] == [
        {"name": "public", "rank": 0, "color": "#2e7d32", "description": "Anyone may see it"},
        {"name": "internal", "rank": 1, "color": "", "description": ""},
        {"name": "confidential", "rank": 2, "color": "#d9822b", "description": ""},
        {"name": "restricted", "rank": 3, "color": "#c62828", "description": "Named people only"},
    ]
    assert rita["purposes"] == ["treatment-research"]
    sources = {s["name"]: s for s in rita["sources"]}
    assert set(sources) == {"warehouse", "registry"}
    warehouse = sources["warehouse"]
    assert warehouse["may"] == {"credential": "allow"} and warehouse["label"] == "confidential"
    assert warehouse["steward"] == {"name": "Dana Steward", "email": "dana@example.org"}
    assert warehouse["description"] == "Clinical warehouse" and warehouse["owner"] == ""
    assert "{password}" in warehouse["url"]  # the template, never a secret
    assert sources["registry"]["may"] == {"credential": "deny"}

    olaf = await fetch_json("jupyter-guard", "api", "catalog", token="tok-olaf")
    assert [(s["name"], s["may"]) for s in olaf["sources"]] == [("warehouse", {"credential": "deny"})]
    assert "registry" not in json.dumps(olaf)  # a restricted source olaf may not discover is not listed
    dana = await fetch_json("jupyter-guard", "api", "catalog", token="tok-dana", params={"q": "clinical"})
    assert [s["name"] for s in dana["sources"]] == ["warehouse"] and dana["sources"][0]["may"]["credential"] == "allow"


# -- POST catalog/labels -----------------------------------------------------------------------


async def labels_for(fetch_json, paths, token="tok-rita"):
    reply = await fetch_json("jupyter-guard", "api", "catalog", "labels", method="POST", body={"paths": paths}, token=token)
    assert [lab["name"] for lab in reply["labels"]] == ["public", "internal", "confidential", "restricted"]
    return reply["entries"]


async def test_labels_of_files_folders_and_ungoverned_paths(files, fetch_json):
    paths = ["data/patients.csv", "data", "data/visits", "data/visits/2024.csv", "archive", "archive/2020",
             "notes.txt", "scratch", "", "/data/patients.csv", "data/../data/clinics.csv"]
    entries = await labels_for(fetch_json, paths)
    assert list(entries) == paths
    assert entries["data/patients.csv"] == {
        "dataset": "patients", "label": "restricted", "rank": 3, "color": "#c62828",
        "description": "Synthetic patient registry", "steward": {"name": "Dana Steward", "email": "dana@example.org"},
        "purposes": ["treatment-research"], "contains": False,
    }
    short = {p: (e["dataset"], e["contains"]) if e else None for p, e in entries.items()}
    assert short == {
        "data/patients.csv": ("patients", False),
        "data": ("patients", True),  # the most sensitive dataset below the folder
        "data/visits": ("visits", True),  # a glob's literal folder holds its data
        "data/visits/2024.csv": ("visits", False),
        "archive": ("archive", False),  # a folder location governs the folder itself
        "archive/2020": ("archive", False),
        "notes.txt": None,
        "scratch": None,
        "": ("patients", True),  # the server root holds it all
        "/data/patients.csv": ("patients", False),
        "data/../data/clinics.csv": ("clinics", False),
    }
    assert entries["data/visits"]["color"] == "" and entries["data/visits"]["rank"] == 1


async def test_labels_do_not_reveal_what_the_user_may_not_discover(files, fetch_json):
    olaf = await labels_for(fetch_json, ["data/patients.csv", "data", "data/visits", "data/clinics.csv"], token="tok-olaf")
    assert olaf["data/patients.csv"] is None  # olaf may not discover restricted data
    assert olaf["data/visits"] is None
    # the folder shows the most sensitive dataset below it that olaf may know about
    assert (olaf["data"]["dataset"], olaf["data"]["label"], olaf["data"]["contains"]) == ("clinics", "public", True)
    assert olaf["data/clinics.csv"]["dataset"] == "clinics"
    assert "patients" not in json.dumps(list(olaf.values())) and "restricted" not in json.dumps(olaf)
    dana = await labels_for(fetch_json, ["data/patients.csv", "data/visits"], token="tok-dana")
    assert dana["data/patients.csv"]["dataset"] == "patients" and dana["data/visits"]["dataset"] == "visits"


async def test_the_folder_index_is_built_once_per_catalog(files, fetch_json, guard_app, catalog_dir):
    await labels_for(fetch_json, ["data"])
    catalog = guard_app.governor.catalog
    index = catalog.folders()
    await labels_for(fetch_json, ["data", "archive"])
    assert guard_app.governor.catalog.folders() is index  # cached with the catalog
    (catalog_dir / "datasets.yaml").write_text(DATASETS + MORE_DATASETS + "  - {name: new, label: restricted, "
                                               "steward: S, locations: [scratch/new.csv]}\n")
    await guard_app.check_catalog()
    entries = await labels_for(fetch_json, ["scratch"], token="tok-dana")
    assert (entries["scratch"]["dataset"], entries["scratch"]["contains"]) == ("new", True)  # a reload rebuilds it


async def test_bad_label_requests_get_400(fetch_json):
    for body, words in (({}, "paths is required"), ({"paths": "data"}, "paths must be array"),
                        ({"paths": [1]}, "paths.0 must be string"), ({"paths": ["x"] * 2001}, "more than 2000 items"),
                        ({"paths": ["a\x00b"]}, "NUL character")):
        code, message = await error_of(fetch_json("jupyter-guard", "api", "catalog", "labels", method="POST", body=body))
        assert code == 400 and words in message, (body if len(json.dumps(body)) < 100 else "2001 paths", message)
    entries = await labels_for(fetch_json, ["x"] * 2000)  # the limit itself is fine
    assert entries == {"x": None}


# -- POST access-requests ----------------------------------------------------------------------


async def test_an_access_request_is_recorded_for_the_steward(fetch_json, jp_fetch):
    reason = "  For the treatment study, ticket 42. My key is AKIAIOSFODNN7EXAMPLE  "
    r = await jp_fetch(*ACCESS_REQUESTS, method="POST", headers=auth("tok-rita"),
                       body=json.dumps({"dataset": "patients", "reason": reason, "notebook": "analysis.ipynb",
                                        "kernel_id": "k-1"}))
    assert r.code == 201
    reply = json.loads(r.body)
    seq = reply["audit_seq"]
    assert isinstance(seq, int) and reply["dataset"] == "patients"
    assert reply["steward"] == {"name": "Dana Steward", "email": "dana@example.org"}
    assert f"(#{seq})" in reply["message"] and "Dana Steward <dana@example.org>" in reply["message"]
    assert "AKIA" not in reply["message"]

    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"event_type": "access_request"})
    (rec,) = page["records"]
    assert rec["seq"] == seq and rec["user"] == "rita" and rec["action"] == "read"
    assert (rec["target"], rec["dataset"], rec["label"], rec["decision"]) == ("dataset:patients", "patients", "restricted", "requested")
    assert rec["notebook"] == "analysis.ipynb" and rec["kernel_id"] == "k-1"
    assert rec["details"] == {"steward": "Dana Steward <dana@example.org>"}
    assert rec["justification"].startswith("For the treatment study, ticket 42.") and rec["justification"].endswith("***")
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(page)  # the secret is masked before it is stored

    source = await fetch_json(*ACCESS_REQUESTS, method="POST", body={"dataset": "warehouse", "reason": "monthly report",
                                                                     "action": "credential"})
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"event_type": "access_request", "action": "credential"})
    (rec,) = page["records"]
    assert rec["seq"] == source["audit_seq"] and rec["target"] == "source:warehouse" and rec["label"] == "confidential"


async def test_access_requests_do_not_reveal_undiscoverable_datasets(fetch_json):
    hidden = await error_of(fetch_json(*ACCESS_REQUESTS, method="POST", token="tok-olaf",
                                       body={"dataset": "patients", "reason": "curious"}))
    unknown = await error_of(fetch_json(*ACCESS_REQUESTS, method="POST", token="tok-olaf",
                                        body={"dataset": "nonesuch", "reason": "curious"}))
    assert hidden == (404, "no dataset 'patients' in the catalog that olaf can see")
    assert unknown == (404, "no dataset 'nonesuch' in the catalog that olaf can see")
    hidden_source = await error_of(fetch_json(*ACCESS_REQUESTS, method="POST", token="tok-olaf",
                                              body={"dataset": "registry", "reason": "curious"}))
    assert hidden_source[0] == 404
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"event_type": "access_request"})
    assert page["records"] == []
    ok = await fetch_json(*ACCESS_REQUESTS, method="POST", token="tok-olaf", body={"dataset": "clinics", "reason": "maps"})
    assert ok["dataset"] == "clinics" and "Ops Team <ops@example.org>" in ok["message"]


async def test_bad_access_requests_get_400(fetch_json):
    good = {"dataset": "patients", "reason": "the study"}
    for body, words in (
        ({"reason": "x"}, "dataset"), ({**good, "dataset": 3}, "dataset"), ({**good, "reason": "   "}, "reason must not be blank"),
        ({"dataset": "patients"}, "reason is required"), ({**good, "reason": "x" * 2001}, "longer than 2000 characters"),
        ({**good, "action": "fly"}, "action must be one of"), ({**good, "notebook": 5}, "notebook must be string or null"),
        ({**good, "kernel_id": ["k"]}, "kernel_id must be string or null"), ([1], "JSON object"),
    ):
        code, message = await error_of(fetch_json(*ACCESS_REQUESTS, method="POST", body=body))
        assert code == 400 and words in message, (body, message)
    ok = await fetch_json(*ACCESS_REQUESTS, method="POST", body={**good, "reason": " " + "x" * 1998 + " ", "action": "export"})
    assert ok["audit_seq"] > 0  # 2000 characters is fine


# -- GET audit/export --------------------------------------------------------------------------


async def export(jp_fetch, token="tok-dana", **params):
    return await jp_fetch("jupyter-guard", "api", "audit", "export", headers=auth(token), params=params)


def cli_export(audit_dir, tmp_path, fmt: str, *filters: str) -> str:
    out = tmp_path / f"cli.{fmt}"
    assert cli(["audit", "export", "--audit-dir", str(audit_dir), "--format", fmt, "-o", str(out), *filters]) == 0
    return out.read_text(encoding="utf-8")


async def test_export_streams_what_the_cli_writes_and_is_recorded(fetch_json, jp_fetch, audit_dir, tmp_path, monkeypatch):
    import jupyter_guard.server.handlers.audit

    monkeypatch.setattr(jupyter_guard.server.handlers.audit, "EXPORT_PAGE", 3)  # several pages, each flushed
    for target in ("data/patients.csv", "data/clinics.csv", "data/patients.csv", "data/visits/x.csv"):
        await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": target, "notebook": "=cmd|x"},
                         expect=403 if target == "data/patients.csv" else 200)
    await fetch_json(*ACCESS_REQUESTS, method="POST", body={"dataset": "patients", "reason": "needs, \"quotes\"\nand lines"})
    await fetch_json("jupyter-guard", "api", "decide", method="POST", token="tok-olaf", body={"target": "data/clinics.csv"})

    r = await export(jp_fetch, format="jsonl")
    assert r.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="jupyter-guard-audit.jsonl"'
    body = r.body.decode()
    assert body == cli_export(audit_dir, tmp_path, "jsonl")
    rows = [json.loads(line) for line in body.splitlines()]
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1)) and len(rows) == 8
    assert rows[0]["event_type"] == "server_started"  # the first record of every log this server writes
    assert rows[-1]["event_type"] == "audit_export"  # recorded before the records were read

    r = await export(jp_fetch, format="csv", user="rita", label="restricted")
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="jupyter-guard-audit.csv"'
    body = r.body.decode()
    assert body == cli_export(audit_dir, tmp_path, "csv", "--user", "rita", "--label", "restricted")
    assert len(body.splitlines()) > 3 and "'=cmd|x" in body  # formula-looking cells are defused, as in the CLI

    r = await export(jp_fetch, format="csv", event_type="nothing-like-this")
    assert r.body.decode() == cli_export(audit_dir, tmp_path, "csv", "--event-type", "nothing-like-this")
    assert r.body.decode().count("\n") == 1  # the header only

    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"event_type": "audit_export", "order": "asc"})
    recs = page["records"]
    assert [(x["user"], x["action"], x["details"]) for x in recs] == [
        ("dana", "audit_export", {"format": "jsonl", "filters": {}}),
        ("dana", "audit_export", {"format": "csv", "filters": {"user": "rita", "label": "restricted"}}),
        ("dana", "audit_export", {"format": "csv", "filters": {"event_type": "nothing-like-this"}}),
    ]


async def test_export_is_for_stewards_and_checks_its_arguments(fetch_json, jp_fetch):
    code, message = await error_of(export(jp_fetch, token="tok-rita", format="csv"))
    assert code == 403 and "rita is not a data steward" in message
    code, message = await error_of(export(jp_fetch, format="xlsx"))
    assert code == 400 and "format must be one of jsonl, csv" in message
    code, message = await error_of(export(jp_fetch, format="csv", since="last tuesday"))
    assert code == 400 and "bad audit query" in message
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"event_type": "audit_export"})
    assert page["records"] == []  # refused exports are not exports


async def test_audit_filters_are_shared_by_query_and_export(fetch_json, jp_fetch):
    await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "data/patients.csv"}, expect=403)
    await fetch_json("jupyter-guard", "api", "decide", method="POST", token="tok-olaf", body={"target": "data/clinics.csv"})
    params = {"user": "olaf", "since": "2000-01-01", "until": "2999-01-01T00:00:00Z", "dataset": ""}
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params=params)
    exported = (await export(jp_fetch, format="jsonl", **params)).body.decode().splitlines()
    assert [r["seq"] for r in page["records"]] == [json.loads(line)["seq"] for line in exported] != []
    code, _ = await error_of(fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"until": "soon"}))
    assert code == 400


async def test_ui_routes_fail_closed_when_the_audit_log_cannot_record(fetch_json, jp_fetch, audit_dir):
    await fetch_json("jupyter-guard", "api", "decide", method="POST", body={"target": "data/clinics.csv"})
    (audit_dir / "audit.sqlite").unlink()  # the store disappears under the running server
    code, message = await error_of(fetch_json(*ACCESS_REQUESTS, method="POST", body={"dataset": "patients", "reason": "study"}))
    assert code == 503 and "the request for access to 'patients' was not sent: the audit log cannot record it" in message
    code, message = await error_of(export(jp_fetch, format="csv"))
    assert code == 503 and "dana may not export the audit log now: the audit log cannot record it" in message
