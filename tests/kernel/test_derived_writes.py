"""A frame made from governed data, written to a file from a kernel, makes that file governed as
its most sensitive source (issue 16, lineage for pandas writes): a real jupyter_server, a real
ipykernel, the audit log read back through the REST API."""

from __future__ import annotations

import json
import textwrap

import pytest
from kernel_client import auth, running_kernel
from tornado.httpclient import HTTPClientError

PATIENTS = textwrap.dedent("""\
    id,name,ssn,email
    1,Ann Lee,123-45-6789,ann.lee@example.com
    2,Bo Chan,234-56-7891,bo.chan@example.net
""")


@pytest.fixture
def data(jp_root_dir):
    (jp_root_dir / "data").mkdir(exist_ok=True)
    (jp_root_dir / "data" / "patients.csv").write_text(PATIENTS)
    (jp_root_dir / "data" / "clinics.csv").write_text("id,city\n1,Springfield\n")
    return jp_root_dir


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"order": "asc", "limit": "500", **params})
    return page["records"]


async def test_a_file_written_from_a_governed_frame_is_governed_as_its_source(data, jp_fetch, jp_ws_fetch, fetch_json,
                                                                                audit_dir, capsys):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        res = await k.execute(
            "import pandas as pd\n"
            "df = pd.read_csv('data/patients.csv')\n"
            "small = df[df.id > 1].head()\n"  # pandas carries the sources through operations
            "small.to_csv('mine.csv', index=False)\n"
            "pd.read_csv('data/clinics.csv').to_csv('cities.csv', index=False)\n"  # public: still governed (clinics)
            "pd.DataFrame({'x': [1]}).to_csv('free.csv')\n"  # made from nothing governed: a free file
            "print(sorted(small.attrs['jupyter_guard_sources']))", cell_id="cell-write")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "['patients']" in res.text
        assert (data / "mine.csv").exists()
        assert "123-45-6789" not in (data / "mine.csv").read_text()  # it was written redacted

        res_mine = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "mine.csv"})
        assert (res_mine["dataset"], res_mine["label"]) == ("patients", "restricted")
        res_free = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "free.csv"})
        assert res_free["dataset"] is None
        # the researcher cannot take the derived file out through the server
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("files", "mine.csv", headers=auth("tok-rita"))
        assert err.value.code == 403
        # and reading it back is a governed read of patients again
        res = await k.execute("back = pd.read_csv('mine.csv'); print(len(back))", cell_id="cell-back")
        assert res.reply["content"]["status"] == "ok", res.text
        (read,) = res.reply["metadata"]["jupyter_guard"]["reads"]
        assert read["dataset"] == "patients" and read["effect"] == "redact"

    writes = await audit(fetch_json, event_type="write")
    assert [(r["user"], r["dataset"], r["decision"], r["details"]["writer"]) for r in writes] == [
        ("rita", "patients", "redact", "pandas.DataFrame.to_csv"), ("rita", "clinics", "allow", "pandas.DataFrame.to_csv")]
    assert all(r["cell_id"] == "cell-write" for r in writes)
    lineage = await audit(fetch_json, event_type="lineage")
    assert [(r["action"], r["dataset"], r["target"].rsplit("/", 1)[-1], r["details"]["datasets"]) for r in lineage] == [
        ("write", "patients", "mine.csv", ["patients"]), ("write", "clinics", "cities.csv", ["clinics"])]
    assert not any("123-45-6789" in json.dumps(r) for r in writes + lineage)

    # the steward renames it in the file browser: still governed, and the lineage follows it back
    await jp_fetch("api", "contents", "mine.csv", method="PATCH", headers=auth("tok-dana"),
                   body=json.dumps({"path": "renamed.csv"}))
    from jupyter_guard.cli import main

    assert main(["lineage", "renamed.csv", "--root", str(data), "--audit-dir", str(audit_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "mine.csv: written from patients (pandas.DataFrame.to_csv) by rita; governed as patients" in out[0]
    assert "renamed.csv: renamed from mine.csv by dana; governed as patients" in out[1]
    assert main(["lineage", "free.csv", "--root", str(data), "--audit-dir", str(audit_dir)]) == 1


async def test_a_write_the_policy_refuses_writes_nothing(data, jp_fetch, jp_ws_fetch, fetch_json, guard_app):
    """The purpose is dropped after the read: the write is decided under the kernel's purpose now,
    refused with who/what/why/who-to-ask, and no file appears."""
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        await k.execute("import pandas as pd\ndf = pd.read_csv('data/patients.csv')")
        await k.execute("%guard purpose --clear")
        res = await k.execute("df.to_csv('later.csv')", cell_id="cell-late")
        assert res.reply["content"]["status"] == "error"
        assert "patients" in res.text and "Dana Steward" in res.text
        assert not (data / "later.csv").exists()
    (rec,) = await audit(fetch_json, event_type="write")
    assert rec["decision"] == "deny" and rec["cell_id"] == "cell-late"
    assert not await audit(fetch_json, event_type="lineage")


async def test_frames_combined_from_two_datasets_carry_both(data, jp_fetch, jp_ws_fetch, fetch_json):
    """pandas keeps attrs only when all inputs agree: concat (a generator too), merge and join take
    the union, so the written file is governed as the most sensitive of its sources."""
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        res = await k.execute(
            "import pandas as pd\n"
            "p = pd.read_csv('data/patients.csv'); c = pd.read_csv('data/clinics.csv')\n"
            "both = pd.concat(f for f in (c, p))\n"
            "m = c.merge(p, on='id')\n"
            "j = pd.merge(left=c, right=p, on='id')\n"
            "jj = c.set_index('id').join(p.set_index('id'))\n"
            "g = m.groupby('city').agg('count')\n"  # pandas itself drops attrs here
            "for f in (both, m, j, jj, g): print(sorted(f.attrs['jupyter_guard_sources']))\n"
            "m.to_parquet('joined.parquet')", cell_id="cell-combine")
        assert res.reply["content"]["status"] == "ok", res.text
        assert res.text.count("['clinics', 'patients']") == 5, res.text
    res = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "joined.parquet"})
    assert (res["dataset"], res["label"]) == ("patients", "restricted")
    (lin,) = await audit(fetch_json, event_type="lineage")
    assert lin["details"]["datasets"] == ["clinics", "patients"] and lin["dataset"] == "patients"


async def test_stewards_list_derived_files_promote_them_and_drop_them(data, jp_fetch, jp_ws_fetch, fetch_json,
                                                                       guard_app, catalog_dir, tmp_path):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        res = await k.execute("import os, pandas as pd\nos.makedirs('out', exist_ok=True)\n"
                              "pd.read_csv('data/patients.csv').to_csv('out/mine.csv', index=False)")
        assert res.reply["content"]["status"] == "ok", res.text
    with pytest.raises(HTTPClientError) as err:
        await fetch_json("jupyter-guard", "api", "derived")  # rita: not a steward
    assert err.value.code == 403
    (entry,) = (await fetch_json("jupyter-guard", "api", "derived", token="tok-dana"))["derived"]
    assert entry["path"].endswith("/out/mine.csv") and entry["dataset"] == "patients" and entry["label"] == "restricted"

    # the entry to paste is a valid catalog dataset governing that file
    from jupyter_guard.governor import load_governance

    promoted = tmp_path / "promoted"
    promoted.mkdir()
    for f in catalog_dir.iterdir():
        (promoted / f.name).write_text(f.read_text())
    with open(promoted / "datasets.yaml", "a") as out:
        out.write("".join("  " + line + "\n" for line in entry["catalog_entry"].splitlines()))
    gov = load_governance(promoted, data)
    found = gov.catalog.resolve("out/mine.csv", "path").dataset
    assert found.name == "patients_mine" and found.label.name == "restricted"
    assert {c.column: c.rule for c in found.columns} == {"ssn": "mask", "email": "hash", "notes": "scan"}

    # dropped: no longer governed as patients, now and after a restart (the drop is on the record)
    dropped = await fetch_json("jupyter-guard", "api", "derived", method="DELETE", token="tok-dana",
                               params={"path": "out/mine.csv"})
    assert dropped["dropped"] is True and dropped["dataset"] == "patients"
    assert guard_app.governor.catalog.resolve("out/mine.csv", "path").dataset is None
    guard_app.governor.copies.clear()
    assert guard_app.governor.restore_copies() == 0
    with pytest.raises(HTTPClientError) as err:
        await fetch_json("jupyter-guard", "api", "derived", method="DELETE", token="tok-dana",
                         params={"path": "out/mine.csv"})
    assert err.value.code == 404
    actions = [(r["action"], r["user"]) for r in await audit(fetch_json, event_type="lineage")]
    assert actions == [("write", "rita"), ("drop", "dana")]
