"""Brokered reads on one machine: a real jupyter_server with jupyter_guard serves the datasets
marked ``access: brokered`` itself (route kernel/read), a real ipykernel asks for them through
pandas, polars, pyarrow and jupyter_guard.read, and the frames come back redacted by the server.

The tests run as root here, so "the kernel cannot open the file" is shown under the real
JupyterHub with OS users (tests/hub/test_guard_service_hub.py); these check the data path:
same frames as the in-kernel path, pushdown, refusals, tickets, the cell's audit record.
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from conftest import DATASETS, POLICY, write_catalog
from kernel_client import running_kernel

SSNS = ["123-45-6789", "234-56-7891", "345-67-8912", "456-78-9123"]
EMAILS = ["ann.lee@example.com", "bo.chan@example.net", "cy.diaz@example.org", "di.eng@example.com"]
ROWS = [
    (1, "Ann Lee", SSNS[0], EMAILS[0], "Call back at 212-555-0187 about the results", 41),
    (2, "Bo Chan", SSNS[1], EMAILS[1], f"Prefers mail to {EMAILS[1]}", 35),
    (3, "Cy Diaz", SSNS[2], EMAILS[2], "No contact details given", 62),
    (4, "Di Eng", SSNS[3], EMAILS[3], "Seen twice", 50),
]
SECRETS = SSNS + EMAILS + ["212-555-0187"]

RULES = """\
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
"""
BROKERED = f"""\
  - name: patients_brokered
    label: restricted
    access: brokered
    steward: Dana Steward <dana@example.org>
    locations: [data/brokered/patients.csv]
{RULES}  - name: labs
    label: restricted
    access: brokered
    steward: Dana Steward <dana@example.org>
    locations: [data/brokered/labs.parquet]
{RULES}  - name: labs_direct
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [data/direct/labs.parquet]
{RULES}"""


SQL_SOURCE = """\
  - name: clinic_patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [{{table: clinic.main.patients}}]
    columns:
      ssn: {{entity: US_SSN, rule: mask}}
      email: {{entity: EMAIL_ADDRESS, rule: hash}}
    purposes: [treatment-research]
sources:
  - name: clinic
    label: restricted
    access: brokered  # only the guard connects: its tables are brokered, kernels get no secret
    steward: Dana Steward <dana@example.org>
    url: sqlite:///{db}
"""


@pytest.fixture
def catalog_dir(tmp_path, jp_root_dir):
    sql = SQL_SOURCE.format(db=jp_root_dir / "clinic.db")
    connect = "rules:\n  - {name: connect-brokered, datasets: [clinic], actions: [credential], roles: [researcher], effect: allow}\n"
    return write_catalog(tmp_path / "catalog", DATASETS + BROKERED + sql, POLICY.replace("rules:\n", connect, 1))


@pytest.fixture
def data(jp_root_dir):
    import pandas as pd

    frame = pd.DataFrame(ROWS, columns=["id", "name", "ssn", "email", "notes", "age"])
    for sub in ("brokered", "direct"):
        (jp_root_dir / "data" / sub).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(jp_root_dir / "data" / sub / "labs.parquet", index=False)
    frame.to_csv(jp_root_dir / "data" / "patients.csv", index=False)  # the in-kernel (direct) dataset
    frame.to_csv(jp_root_dir / "data" / "brokered" / "patients.csv", index=False)
    import sqlite3

    with sqlite3.connect(jp_root_dir / "clinic.db") as db:
        frame.to_sql("patients", db, index=False)
        db.execute("create table visits (id integer)")
    return jp_root_dir


PURPOSE = "%guard purpose treatment-research"


async def run(k, code: str, cell_id: str | None = None):
    res = await k.execute(textwrap.dedent(code), cell_id=cell_id)
    return res


def reads(res) -> list[dict]:
    return res.reply["metadata"]["jupyter_guard"]["reads"]


async def test_pandas_reads_of_brokered_data_equal_the_in_kernel_redaction(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await run(k, PURPOSE)
        res = await run(k, """
            import pandas as pd
            b = pd.read_csv('data/brokered/patients.csv')
            d = pd.read_csv('data/patients.csv')
            pd.testing.assert_frame_equal(b, d)
            bp = pd.read_parquet('data/brokered/labs.parquet')
            dp = pd.read_parquet('data/direct/labs.parquet')
            pd.testing.assert_frame_equal(bp, dp)
            print(b.to_string()); print(bp.attrs)
        """, cell_id="cell-brokered")
        assert res.reply["content"]["status"] == "ok", res.text
        for secret in SECRETS:
            assert secret not in res.text
        assert "Ann Lee" in res.text and "'labs'" in res.text  # kept columns; the frame knows its source
        brokered = [r for r in reads(res) if r.get("access") == "brokered"]
        assert [r["dataset"] for r in brokered] == ["patients_brokered", "labs"]
        assert brokered[0]["rows"] == 4 and brokered[0]["columns"] == {"ssn": "mask", "email": "hash", "notes": "scan"}
        assert brokered[0]["entity_counts"].get("PHONE_NUMBER") and brokered[0]["audit_seq"]
        # the same records as an in-kernel read: the decision and the cell execution
        for _ in range(100):
            recs = (await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                                     params={"order": "asc", "limit": "500"}))["records"]
            cells = [r for r in recs if r["event_type"] == "cell_execution" and r["cell_id"] == "cell-brokered"]
            if cells:
                break
            await asyncio.sleep(0.05)
        decided = {r["dataset"] for r in recs if r["event_type"] == "decision" and r["decision"] == "redact"}
        assert {"patients_brokered", "labs", "patients", "labs_direct"} <= decided
        (cell,) = cells
        assert {d["dataset"] for d in cell["details"]["datasets"]} == {"patients_brokered", "labs", "patients",
                                                                      "labs_direct"}
        by_dataset = {r["dataset"]: r for r in cell["details"]["redaction"]["reads"]}
        assert by_dataset["labs"]["columns"] == by_dataset["labs_direct"]["columns"]
        assert by_dataset["labs"]["entity_counts"] == by_dataset["labs_direct"]["entity_counts"]
        assert not any(s in json.dumps(recs) for s in SECRETS)


async def test_projection_and_filters_are_pushed_down_and_polars_pyarrow_read_brokered_data(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await run(k, PURPOSE)
        res = await run(k, """
            import pandas as pd, polars as pl, pyarrow.parquet as pq, jupyter_guard
            a = pd.read_parquet('data/brokered/labs.parquet', columns=['id', 'age'], filters=[('age', '>', 40)])
            print('pandas', sorted(a.columns), sorted(a['id']))
            b = pl.read_parquet('data/brokered/labs.parquet', columns=['id', 'email'])
            print('polars', type(b).__name__, b.columns, b.height, b['email'][0].startswith('PSN_'))
            c = pl.scan_parquet('data/brokered/labs.parquet')
            print('lazy', type(c).__name__, c.collect().height)
            t = pq.read_table('data/brokered/labs.parquet', columns=['ssn'])
            print('arrow', type(t).__name__, t.column('ssn').to_pylist()[0])
            g = jupyter_guard.read('labs', columns=['id', 'notes'], filters=[('id', 'in', [1, 3])], as_='polars')
            print('read', g.height, g.columns)
            h = jupyter_guard.read('data/brokered/patients.csv', filters=[('age', '<', 50)])
            print('csv', sorted(h['id']))
        """)
        assert res.reply["content"]["status"] == "ok", res.text
        assert "pandas ['age', 'id'] [1, 3, 4]" in res.text
        assert "polars DataFrame ['id', 'email'] 4 True" in res.text
        assert "lazy LazyFrame 4" in res.text
        assert "arrow Table ***-**-6789" in res.text  # masked by the broker
        assert "read 2 ['id', 'notes']" in res.text
        assert "csv [1, 2]" in res.text
        for secret in SECRETS:
            assert secret not in res.text
        rows = [r["rows"] for r in reads(res) if r.get("access") == "brokered"]
        assert rows[0] == 3  # the filter ran in the broker


async def test_what_a_broker_cannot_serve_is_refused_with_why(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await run(k, PURPOSE)
        res = await run(k, "import pandas as pd\npd.read_parquet('data/brokered/labs.parquet', filters=[('ssn', '=', '123-45-6789')])")
        assert res.error and res.error["ename"] == "GuardDenied"
        assert "row filter on ssn" in res.error["evalue"] and "raw values" in res.error["evalue"]
        res = await run(k, "pd.read_csv('data/brokered/patients.csv', converters={'id': int})")
        assert res.error and "does not take converters=" in res.error["evalue"]
        res = await run(k, "pd.read_csv('data/brokered/patients.csv', usecols=lambda c: c != 'ssn')")
        assert res.error and "usecols=" in res.error["evalue"]
        res = await run(k, "pd.read_json('data/brokered/labs.parquet')")  # a reader the broker does not serve
        assert res.error and "cannot be served that way" in res.error["evalue"]
        # without the purpose the decision itself refuses, before any ticket
        await run(k, "%guard purpose --clear")
        res = await run(k, "pd.read_parquet('data/brokered/labs.parquet')")
        assert res.error and res.error["ename"] == "GuardDenied" and "purpose" in res.error["evalue"].lower()


async def test_a_ticket_serves_one_read_and_only_as_issued(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await run(k, PURPOSE)
        res = await run(k, """
            from jupyter_guard.kernel.guard import STATE
            from jupyter_guard.kernel import brokered
            from jupyter_guard import GuardDenied
            import os
            guard = STATE['guard']
            d = guard.client.decide({'target': os.path.abspath('data/brokered/labs.parquet'), 'kind': 'path',
                                     'action': 'read', 'msg_id': 'x'})
            shape = brokered.Shape('parquet')
            table, report = brokered.fetch(d, shape)
            print('first', table.num_rows, report['rows'])
            for name, dd in [('again', d), ('forged', {**d, 'ticket': d['ticket'][:-3] + 'AAA'}),
                             ('none', {**d, 'ticket': 'x.y'})]:
                try:
                    brokered.fetch(dd, shape)
                    print(name, 'SERVED')
                except GuardDenied as e:
                    print(name, 'refused:', e)
        """)
        assert res.reply["content"]["status"] == "ok", res.text
        assert "first 4 4" in res.text
        assert "again refused: this read's ticket was already used" in res.text
        assert "forged refused: this read's ticket is not one the guard issued" in res.text
        assert "none refused: this read's ticket is not one the guard issued" in res.text
        assert "SERVED" not in res.text


async def test_the_read_route_wants_a_kernel_token(data, jp_fetch):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("jupyter-guard", "api", "kernel", "read", method="POST",
                       body=json.dumps({"ticket": "x.y", "format": "csv"}), headers={"Authorization": "token tok-rita"})
    assert e.value.code == 403


async def test_sql_on_a_brokered_source_is_run_by_the_guard_and_redacted(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await run(k, PURPOSE)
        res = await run(k, """
            import pandas as pd, polars as pl, jupyter_guard
            from jupyter_guard import GuardDenied
            con = jupyter_guard.connect('clinic')
            print(repr(con))
            a = pd.read_sql('select id, ssn, email as contact from patients where id < 3 order by id', con)
            d = pd.read_csv('data/patients.csv')
            print('PANDAS', a.ssn.tolist(), a.contact.tolist() == d.email[:2].tolist(), a.attrs)
            b = pl.read_database('select ssn from patients', con)
            print('POLARS', type(b).__name__, b['ssn'].to_list()[:1])
            t = pd.read_sql_table('patients', con)
            print('TABLE', t.shape, t.ssn[0])
            for name, q in [('union', 'select ssn from patients union select email from patients'),
                            ('uncatalogued', 'select * from visits')]:
                try:
                    pd.read_sql(q, con)
                    print(name, 'SERVED')
                except GuardDenied as e:
                    print(name, 'refused:', e)
            try:
                con.connect()
            except GuardDenied as e:
                print('engine refused:', e)
        """, cell_id="cell-sql")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "<brokered data source 'clinic' (sqlite)" in res.text
        assert "PANDAS ['***-**-6789', '***-**-7891'] True" in res.text and "clinic_patients" in res.text
        assert "POLARS DataFrame ['***-**-6789']" in res.text
        assert "TABLE (4, 6) ***-**-6789" in res.text
        assert "union refused: this query's result cannot be redacted column by column" in res.text
        assert "uncatalogued refused:" in res.text and "not catalogued as brokered tables of 'clinic'" in res.text
        assert "engine refused: data source 'clinic' is brokered" in res.text
        assert "SERVED" not in res.text
        for secret in SECRETS:
            assert secret not in res.text
        sql_reads = [r for r in reads(res) if r.get("access") == "brokered" and r["dataset"] == "clinic_patients"]
        assert sql_reads and sql_reads[0]["columns"] == {"ssn": "mask", "contact": "hash"}
