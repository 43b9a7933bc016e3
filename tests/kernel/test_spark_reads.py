"""Governed reads on Spark (issue 16): ``spark.read.*``, ``spark.table`` and ``spark.sql`` in a
real kernel under a real jupyter_server, on a real PySpark ``local[2]`` session (Java 17)."""

from __future__ import annotations

import textwrap

import pytest
import pyspark  # noqa: F401  (a test dependency: missing, this module fails loudly, never skips)
from conftest import POLICY, write_catalog
from kernel_client import running_kernel

DATASETS = """\
datasets:
  - name: patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations:
      - data/patients.csv
      - table: spark_catalog.clinic.patients
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
"""
PATIENTS = textwrap.dedent("""\
    id,name,ssn,email,notes
    1,Ann Lee,123-45-6789,ann.lee@example.com,call 212-555-0187
    2,Bo Chan,234-56-7891,bo.chan@example.net,fine
    3,Cy Diaz,345-67-8912,cy.diaz@example.org,mail cy.diaz@example.org
""")
SECRETS = ["123-45-6789", "ann.lee@example.com", "212-555-0187", "cy.diaz@example.org"]
SESSION = textwrap.dedent("""\
    import os, sys
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").appName("guard-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.warehouse.dir", os.path.abspath("spark-warehouse")).getOrCreate())
    import pandas as pd
""")


@pytest.fixture
def catalog_dir(tmp_path):
    return write_catalog(tmp_path / "catalog", DATASETS, POLICY)


@pytest.fixture
def data(jp_root_dir):
    (jp_root_dir / "data").mkdir(exist_ok=True)
    (jp_root_dir / "data" / "patients.csv").write_text(PATIENTS)
    return jp_root_dir


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"order": "asc", "limit": "500", **params})
    return page["records"]


async def test_spark_reads_are_decided_in_the_driver_and_redacted_on_the_executors(data, jp_fetch, jp_ws_fetch,
                                                                                   fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute(SESSION, timeout=240)
        assert res.reply["content"]["status"] == "ok", res.text
        # no purpose: refused in the driver, for files, path SQL and tables alike
        for code in ("spark.read.csv('data/patients.csv', header=True)",
                     "spark.sql('SELECT * FROM csv.`data/patients.csv`')"):
            res = await k.execute(code, cell_id="cell-deny")
            assert res.reply["content"]["status"] == "error" and "GuardDenied" in res.text, code
            assert "Dana Steward" in res.text

        await k.execute("%guard purpose treatment-research")
        res = await k.execute(
            "sdf = spark.read.csv('data/patients.csv', header=True)\n"
            "out = sdf.toPandas().sort_values('id').reset_index(drop=True)\n"
            "print(out.to_string())\n"
            "ref = pd.read_csv('data/patients.csv', dtype=str)\n"
            "print('same as pandas:', out.astype(object).values.tolist() == ref.astype(object).values.tolist())",
            cell_id="cell-spark", timeout=240)
        assert res.reply["content"]["status"] == "ok", res.text
        for secret in SECRETS:
            assert secret not in res.text
        assert "***-**-6789" in res.text and "PSN_" in res.text and "<PHONE_NUMBER>" in res.text
        assert "same as pandas: True" in res.text  # row for row, pseudonyms included
        (read,) = [r for r in res.reply["metadata"]["jupyter_guard"]["reads"]
                   if r["reader"] == "pyspark.DataFrameReader.csv"]
        assert read["dataset"] == "patients" and read["effect"] == "redact"

        # without the header the catalog's columns cannot be found: refused, not returned raw
        res = await k.execute("spark.read.csv('data/patients.csv').toPandas()", cell_id="cell-noheader")
        assert res.reply["content"]["status"] == "error" and "header=True" in res.text
        assert not any(s in res.text for s in SECRETS)

        # a catalogued Spark table, through spark.table and spark.sql
        res = await k.execute(
            "spark.sql('CREATE DATABASE IF NOT EXISTS clinic')\n"
            "spark.createDataFrame(pd.DataFrame({'id': ['9'], 'name': ['Ed Fox'], 'ssn': ['567-89-1234'],"
            " 'email': ['ed.fox@example.com'], 'notes': ['none']})).write.mode('overwrite').saveAsTable('clinic.patients')\n"
            "a = spark.table('clinic.patients').toPandas()\n"
            "b = spark.sql('SELECT ssn, email FROM clinic.patients').toPandas()\n"
            "print(a.to_string()); print(b.to_string())", cell_id="cell-table", timeout=240)
        assert res.reply["content"]["status"] == "ok", res.text
        assert "567-89-1234" not in res.text and "ed.fox@example.com" not in res.text
        assert "***-**-1234" in res.text
        tables = [r for r in res.reply["metadata"]["jupyter_guard"]["reads"] if r["dataset"] == "patients"]
        assert {r["reader"] for r in tables} == {"pyspark.SparkSession.table", "pyspark.SparkSession.sql"}
        # what Spark writes from it is governed as patients (its output directory)
        res = await k.execute("sdf.write.mode('overwrite').parquet('spark_out')", cell_id="cell-write", timeout=240)
        assert res.reply["content"]["status"] == "ok", res.text
        res_ = await fetch_json("jupyter-guard", "api", "catalog", "resolve", params={"path": "spark_out/part-0.parquet"})
        assert res_["dataset"] == "patients"
        await k.execute("spark.stop()", timeout=60)

    decisions = await audit(fetch_json, event_type="decision")
    assert {(r["cell_id"], r["decision"]) for r in decisions} >= {
        ("cell-deny", "deny"), ("cell-spark", "redact"), ("cell-table", "redact")}
