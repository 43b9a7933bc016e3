"""Governed reads on Dask (issue 16): ``dask.dataframe`` readers in a real kernel under a real
jupyter_server, computed on a real ``distributed.LocalCluster`` with two worker processes."""

from __future__ import annotations

import textwrap

import pytest
from conftest import POLICY, write_catalog
from kernel_client import running_kernel

import dask  # noqa: F401  (a test dependency: missing, this module fails loudly, never skips)
import distributed  # noqa: F401

DATASETS = """\
datasets:
  - name: patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [data/patients-*.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
"""
PART = "id,name,ssn,email,notes\n{rows}"
ROWS = [
    "1,Ann Lee,123-45-6789,ann.lee@example.com,call 212-555-0187",
    "2,Bo Chan,234-56-7891,bo.chan@example.net,fine",
    "3,Cy Diaz,345-67-8912,cy.diaz@example.org,mail cy.diaz@example.org",
    "4,Di Eng,456-78-9123,di.eng@example.com,nothing",
]
SECRETS = ["123-45-6789", "ann.lee@example.com", "212-555-0187", "cy.diaz@example.org"]


@pytest.fixture
def catalog_dir(tmp_path):
    return write_catalog(tmp_path / "catalog", DATASETS, POLICY)


@pytest.fixture
def data(jp_root_dir):
    d = jp_root_dir / "data"
    d.mkdir(exist_ok=True)
    (d / "patients-1.csv").write_text(PART.format(rows="\n".join(ROWS[:2]) + "\n"))
    (d / "patients-2.csv").write_text(PART.format(rows="\n".join(ROWS[2:]) + "\n"))
    return jp_root_dir


CLUSTER = textwrap.dedent("""\
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    import dask.dataframe as dd, pandas as pd
""")


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"order": "asc", "limit": "500", **params})
    return page["records"]


async def test_a_dask_read_is_decided_and_redacted_per_partition_like_pandas(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute(CLUSTER, timeout=180)
        assert res.reply["content"]["status"] == "ok", res.text
        # without a purpose: refused in the kernel before any task runs
        res = await k.execute("ddf = dd.read_csv('data/patients-*.csv')", cell_id="cell-deny")
        assert res.reply["content"]["status"] == "error" and "GuardDenied" in res.text
        assert "Dana Steward" in res.text
        res = await k.execute("print(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))")
        assert res.text.strip() == "0", res.text

        await k.execute("%guard purpose treatment-research")
        res = await k.execute(
            "ddf = dd.read_csv('data/patients-*.csv', dtype=str)\n"
            "print(ddf.npartitions)\n"
            "out = ddf.compute().reset_index(drop=True)\n"
            "print(out.to_string())\n"
            "ref = pd.concat([pd.read_csv('data/patients-1.csv', dtype=str), pd.read_csv('data/patients-2.csv', dtype=str)],"
            " ignore_index=True)\n"
            "print('same as pandas:', out.astype(object).values.tolist() == ref.astype(object).values.tolist(),"
            " list(out.columns) == list(ref.columns))\n"
            "print('workers:', sorted(set(client.run(lambda: __import__('os').getpid()).values())) != [__import__('os').getpid()])",
            cell_id="cell-dask", timeout=180)
        assert res.reply["content"]["status"] == "ok", res.text
        assert res.text.splitlines()[0].strip() == "2"  # one partition per file
        for secret in SECRETS:
            assert secret not in res.text
        assert "***-**-6789" in res.text and "PSN_" in res.text and "<PHONE_NUMBER>" in res.text
        assert "same as pandas: True True" in res.text  # row for row, pseudonyms included
        reads = res.reply["metadata"]["jupyter_guard"]["reads"]
        dask_reads = [r for r in reads if r["reader"] == "dask.dataframe.read_csv"]
        assert {r["target"].rsplit("/", 1)[-1] for r in dask_reads} >= {"patients-1.csv", "patients-2.csv"}
        assert all(r["effect"] == "redact" and r["dataset"] == "patients" for r in dask_reads)
        # what Dask writes from it is governed as patients: a directory, and a part-* pattern
        res = await k.execute("ddf[ddf.id != '9'].to_parquet('derived_pq')\n"
                              "ddf.to_csv('derived_csv/part-*.csv', index=False)", cell_id="cell-write", timeout=180)
        assert res.reply["content"]["status"] == "ok", res.text
        for path in ("derived_pq/part.0.parquet", "derived_pq/any/deeper.parquet", "derived_csv/part-1.csv"):
            res_ = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": path})
            assert res_["dataset"] == "patients", path
        res_ = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "derived_csv/other.txt"})
        assert res_["dataset"] is None  # the pattern, not the whole directory
        assert "123-45-6789" not in "".join(p.read_text() for p in (data / "derived_csv").glob("part-*.csv"))
        await k.execute("client.close(); cluster.close()", timeout=60)

    decisions = [r for r in await audit(fetch_json, event_type="decision") if r["cell_id"] in ("cell-deny", "cell-dask")]
    assert ("cell-deny", "deny") in {(r["cell_id"], r["decision"]) for r in decisions}
    assert ("cell-dask", "redact") in {(r["cell_id"], r["decision"]) for r in decisions}
    lineage = await audit(fetch_json, event_type="lineage")
    assert [(r["details"]["writer"], r["dataset"], r["target"].rsplit("/", 2)[-2:]) for r in lineage] == [
        ("dask.DataFrame.to_parquet", "patients", ["derived_pq", "**"]),
        ("dask.DataFrame.to_csv", "patients", ["derived_csv", "part-*.csv"])]
