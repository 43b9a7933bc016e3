"""The kernel guard end to end: a real jupyter_server with jupyter_guard starts a real ipykernel,
cells run over the real websocket, and the audit log is read back through the REST API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import textwrap

import subprocess

import pytest
from conftest import DATASETS, POLICY, write_catalog
from kernel_client import V1, KernelChannel, auth, running_kernel

# -- data and catalog ------------------------------------------------------------------------

SSNS = ["123-45-6789", "234-56-7891", "345-67-8912"]
EMAILS = ["ann.lee@example.com", "bo.chan@example.net", "cy.diaz@example.org"]
PATIENTS = textwrap.dedent(f"""\
    id,name,ssn,email,notes
    1,Ann Lee,{SSNS[0]},{EMAILS[0]},Call back at 212-555-0187 about the results
    2,Bo Chan,{SSNS[1]},{EMAILS[1]},Prefers mail to {EMAILS[1]}
    3,Cy Diaz,{SSNS[2]},{EMAILS[2]},No contact details given
""")
SECRETS = SSNS + EMAILS

EXTRA_DATASETS = """\
  - name: clinic_patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations:
      - table: clinic.main.patients
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
    purposes: [treatment-research]
  - name: grants
    label: internal
    steward: Gil Grants <gil@example.org>
    locations: [data/grants.csv]
"""
JUSTIFY_RULE = """\
rules:
  - name: grants-need-a-reason
    datasets: [grants]
    actions: [read]
    effect: justify
"""


@pytest.fixture
def catalog_dir(tmp_path):
    return write_catalog(tmp_path / "catalog", DATASETS + EXTRA_DATASETS, POLICY.replace("rules:\n", JUSTIFY_RULE, 1))


@pytest.fixture
def data(jp_root_dir):
    d = jp_root_dir / "data"
    (d / "visits").mkdir(parents=True, exist_ok=True)
    (d / "patients.csv").write_text(PATIENTS)
    (d / "clinics.csv").write_text("id,city\n1,Springfield\n")
    (d / "grants.csv").write_text("id,amount\n1,100\n")
    (d / "visits" / "2024.csv").write_text("id,patient\n1,1\n")
    (jp_root_dir / "plain.txt").write_text("not governed\n")
    con = sqlite3.connect(jp_root_dir / "clinic.db")
    con.execute("CREATE TABLE patients (id INTEGER, name TEXT, ssn TEXT, email TEXT)")
    con.executemany("INSERT INTO patients VALUES (?, ?, ?, ?)",
                    [(i + 1, n, s, e) for i, (n, s, e) in enumerate(zip(["Ann", "Bo", "Cy"], SSNS, EMAILS))])
    con.execute("CREATE TABLE clinics (id INTEGER, city TEXT)")
    con.execute("INSERT INTO clinics VALUES (1, 'Springfield')")
    con.commit()
    con.close()
    return jp_root_dir


async def audit(fetch_json, **params) -> list[dict]:
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                            params={"order": "asc", "limit": "500", **params})
    return page["records"]


async def cell_records(fetch_json, cell_id: str, expect: int = 1) -> list[dict]:
    """The cell_execution records of one cell (written when the reply passes the server)."""
    for _ in range(200):
        recs = [r for r in await audit(fetch_json, event_type="cell_execution") if r["cell_id"] == cell_id]
        if len(recs) >= expect:
            return recs
        await asyncio.sleep(0.05)
    return recs


def reads(result) -> list[dict]:
    return result.reply["metadata"]["jupyter_guard"]["reads"]


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [None, V1])
async def test_a_labelled_csv_comes_back_redacted_with_one_audit_record(protocol, data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch, protocol=protocol) as (kernel_id, k):
        res = await k.execute("%guard purpose treatment-research")
        assert "Purpose of this session: treatment-research" in res.text
        code = "import pandas as pd\ndf = pd.read_csv('data/patients.csv')\nprint(df.to_string())"
        res = await k.execute(code, cell_id="cell-read")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "Ann Lee" in res.text  # columns without a rule are kept
        for secret in SECRETS:
            assert secret not in res.text
        assert "212-555-0187" not in res.text  # the free-text column was scanned
        (read,) = reads(res)
        assert read["dataset"] == "patients" and read["effect"] == "redact" and read["rows"] == 3
        assert read["columns"] == {"ssn": "mask", "email": "hash", "notes": "scan"}
        assert read["entity_counts"]

        (rec,) = await cell_records(fetch_json, "cell-read")
        await asyncio.sleep(0.2)
        assert len(await cell_records(fetch_json, "cell-read")) == 1  # exactly one, not one per read
        assert rec["user"] == "rita" and rec["notebook"] == "analysis.ipynb" and rec["kernel_id"] == kernel_id
        assert rec["dataset"] == "patients" and rec["label"] == "restricted" and rec["decision"] == "redact"
        assert rec["purpose"] == "treatment-research" and rec["msg_id"] == res.msg_id
        details = rec["details"]
        assert details["guarded"] is True
        assert details["execution_count"] == res.reply["content"]["execution_count"]
        import hashlib

        assert details["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()
        assert [(d["dataset"], d["label"], d["effect"]) for d in details["datasets"]] == [("patients", "restricted", "redact")]
        (red,) = details["redaction"]["reads"]
        assert red["columns"] == {"ssn": "mask", "email": "hash", "notes": "scan"}
        assert red["entity_counts"].get("US_SSN") == 3 and red["entity_counts"].get("EMAIL_ADDRESS", 0) >= 3

        # the same pseudonym for the same value on every read (joins work), and never the value
        res2 = await k.execute("df2 = pd.read_csv('data/patients.csv'); print((df2.email == df.email).all())")
        assert res2.text.strip() == "True"

        everything = json.dumps(await audit(fetch_json))
        for secret in SECRETS + ["212-555-0187"]:
            assert secret not in everything


async def test_a_denied_read_says_who_what_why_and_whom_to_ask(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute("import pandas as pd\ndf = pd.read_csv('data/patients.csv')", cell_id="cell-deny")
        assert res.error["ename"] == "GuardDenied"
        text = res.error["evalue"]
        assert "rita may not read 'patients' (restricted data)" in text
        assert "needs a declared purpose" in text and "treatment-research" in text
        assert "Dana Steward <dana@example.org>" in text
        # the traceback ends at the researcher's own line: no guard internals below it
        shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(res.error["traceback"]))  # no ANSI colours
        assert "pd.read_csv('data/patients.csv')" in shown and "rita may not read" in shown
        assert "jupyter_guard" not in shown and "decide_all" not in shown, shown
        errors = [o for o in res.outputs if o["msg_type"] == "error"]
        assert [o["content"]["ename"] for o in errors] == ["GuardDenied"]  # one error shown, as usual
        for secret in SECRETS:
            assert secret not in res.text
        res = await k.execute("print('df' in dir())")
        assert res.text.strip() == "False"  # no data returned
        res = await k.execute("import jupyter_guard\ntry:\n    pd.read_csv('data/patients.csv')\n"
                              "except PermissionError as e:\n    print(type(e) is jupyter_guard.GuardDenied)")
        assert res.text.strip() == "True"
        (rec,) = await cell_records(fetch_json, "cell-deny")
        assert rec["decision"] == "deny" and rec["dataset"] == "patients" and rec["details"]["guarded"] is True
        assert rec["details"]["redaction"]["reads"][0]["effect"] == "deny"


async def test_a_cell_that_touches_no_governed_data_is_stamped_but_not_recorded(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute("import sys; print('pandas' in sys.modules, 'presidio_analyzer' in sys.modules)")
        assert res.text.split() == ["False", "False"]  # loading the guard imported neither
        res = await k.execute("import pandas as pd\nprint(pd.read_csv('data/clinics.csv').city[0])\n"
                              "print(open('plain.txt').read())", cell_id="cell-plain")
        assert res.text.split() == ["Springfield", "not", "governed"]
        meta = res.reply["metadata"]["jupyter_guard"]
        assert meta["guarded"] is True
        assert [(r["dataset"], r["effect"]) for r in meta["reads"]] == [("clinics", "allow")]
        await k.execute("x = 1", cell_id="cell-nothing")
        await asyncio.sleep(0.3)
        assert await cell_records(fetch_json, "cell-nothing", expect=0) == []


async def test_after_unload_the_server_still_records_executions_as_unguarded(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%unload_ext jupyter_guard.kernel")
        res = await k.execute("import pandas as pd\nn = len(pd.read_csv('data/clinics.csv'))", cell_id="cell-after")
        assert "jupyter_guard" not in res.reply["metadata"]
        (rec,) = await cell_records(fetch_json, "cell-after")
        assert rec["decision"] == "unguarded" and rec["details"]["guarded"] is False
        assert rec["user"] == "rita" and "pd.read_csv" in rec["details"]["code"]
        res = await k.execute("%guard status")
        assert "UsageError: Line magic function `%guard` not found" in res.text  # the magic went with the guard
        # loading it again guards again (and a plain cell is not recorded)
        await k.execute("%load_ext jupyter_guard.kernel")
        res = await k.execute("pd.read_csv('data/patients.csv')", cell_id="cell-again")
        assert res.error["ename"] == "GuardDenied"
        assert res.reply["metadata"]["jupyter_guard"]["guarded"] is True


async def test_a_restarted_kernel_is_guarded_again(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        await k.execute("%unload_ext jupyter_guard.kernel")
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}", headers=auth("tok-rita"))
        fresh = await KernelChannel.open(jp_ws_fetch, kernel_id, token="tok-rita")
        try:
            res = await fresh.execute("import pandas as pd\npd.read_csv('data/patients.csv')")
            assert res.error["ename"] == "GuardDenied"
            assert res.reply["metadata"]["jupyter_guard"]["guarded"] is True
        finally:
            fresh.close()


async def test_every_spelling_of_a_path_reaches_the_same_decision(data, jp_fetch, jp_ws_fetch):
    root = data
    os.symlink(root / "data" / "patients.csv", root / "link.csv")
    os.symlink(root / "data", root / "alias")
    (root / "sub").mkdir()
    async with running_kernel(jp_fetch, jp_ws_fetch, path="sub/analysis.ipynb") as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd, pathlib, os")
        res = await k.execute("print(os.getcwd())")
        assert res.text.strip() == str(root / "sub")  # the kernel runs in the notebook's directory
        spellings = [
            "'../data/patients.csv'",
            "'../data/../data//patients.csv'",
            f"'{root}/sub/../data/patients.csv'",
            "'../link.csv'",
            "'../alias/patients.csv'",
            "pathlib.Path('..') / 'data' / 'patients.csv'",
            f"'file://{root}/data/patients.csv'",
        ]
        for spelling in spellings:
            res = await k.execute(f"df = pd.read_csv({spelling}); print(df.ssn[0])")
            assert res.reply["content"]["status"] == "ok", (spelling, res.text)
            assert [(r["dataset"], r["effect"]) for r in reads(res)] == [("patients", "redact")], spelling
            assert SSNS[0] not in res.text, spelling
        # an open file handle: open() itself is refused for redacted data (raw bytes cannot be redacted) ...
        res = await k.execute("f = open('../link.csv')")
        assert res.error["ename"] == "GuardDenied" and "'patients' (restricted data)" in res.error["evalue"]
        assert "pandas" in res.error["evalue"]
    # ... and for a steward, whom the policy allows, the handle reads and is reported as that dataset
    async with running_kernel(jp_fetch, jp_ws_fetch, path="sub/analysis.ipynb", token="tok-dana") as (_, k):
        res = await k.execute("import pandas as pd\nwith open('../alias/patients.csv') as f:\n"
                              "    df = pd.read_csv(f)\nprint(len(df))")
        assert res.text.strip() == "3", res.text
        assert {(r["dataset"], r["effect"]) for r in reads(res)} == {("patients", "allow")}


async def test_open_of_a_governed_file_is_refused_and_other_files_are_not(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute("open('data/patients.csv').read()")
        assert res.error["ename"] == "GuardDenied" and "needs a declared purpose" in res.error["evalue"]
        await k.execute("%guard purpose treatment-research")
        for code in ("open('data/patients.csv').read()", "import pathlib; pathlib.Path('data/patients.csv').read_text()",
                     "import os; os.open('data/patients.csv', os.O_RDONLY)"):
            res = await k.execute(code)
            assert res.error and res.error["ename"] == "GuardDenied", code
            assert "Read it with pandas" in res.error["evalue"]
            for secret in SECRETS:
                assert secret not in res.text
        res = await k.execute("print(open('plain.txt').read().strip()); open('out.txt', 'w').write('x')\n"
                              "print(open('data/visits/2024.csv').read().splitlines()[0])")
        assert res.text.split() == ["not", "governed", "id,patient"]  # internal + researcher: allowed


async def test_reads_fail_closed_when_the_audit_log_cannot_record(data, jp_fetch, jp_ws_fetch, audit_dir):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd")
        res = await k.execute("print(len(pd.read_csv('data/patients.csv')))")
        assert res.text.strip() == "3"
        (audit_dir / "audit.sqlite").unlink()
        res = await k.execute("df = pd.read_csv('data/patients.csv')")
        assert res.error["ename"] == "GuardDenied", res.text
        assert "audit log cannot record" in res.error["evalue"]


async def test_reads_fail_closed_when_the_audit_store_is_read_only(data, jp_fetch, jp_ws_fetch, audit_dir):
    # chattr +i binds root too (tests run as root, where chmod would not); the mmapped -shm
    # file is left alone: SQLite cannot survive an unwritable shared-memory file
    frozen = [str(audit_dir / "audit.sqlite"), str(audit_dir / "audit.sqlite-wal")]
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd")
        res = await k.execute("print(len(pd.read_csv('data/patients.csv')))")
        assert res.text.strip() == "3"
        subprocess.run(["chattr", "+i", *frozen], check=True)
        try:
            res = await k.execute("df = pd.read_csv('data/patients.csv')")
        finally:
            subprocess.run(["chattr", "-i", *frozen], check=True)
        assert res.error["ename"] == "GuardDenied", res.text
        assert "audit log cannot record" in res.error["evalue"] and "audit.sqlite" in res.error["evalue"]
        res = await k.execute("print('df' in dir())")
        assert res.text.strip() == "False"  # no data reached the notebook
        res = await k.execute("print('df' in dir())")
        assert res.text.strip() == "False"


async def test_reads_fail_closed_when_the_server_is_unreachable(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute(textwrap.dedent("""\
            import os, socket
            s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
            good = os.environ['JUPYTER_GUARD_URL']
            os.environ['JUPYTER_GUARD_URL'] = f'http://127.0.0.1:{port}/jupyter-guard/api/kernel'
            import pandas as pd
        """))
        assert res.reply["content"]["status"] == "ok", res.text
        res = await k.execute("df = pd.read_csv('data/clinics.csv')")
        assert res.error["ename"] == "GuardDenied" and "cannot reach its server" in res.error["evalue"]
        res = await k.execute("open('plain.txt').read()")
        assert res.error["ename"] == "GuardDenied"  # unknown files cannot be checked either
        res = await k.execute("import tempfile; fd, p = tempfile.mkstemp(); open(p, 'w').write('x'); print(1 + 1)")
        assert res.text.strip() == "2", res.text  # cells, new files and writes still work
        res = await k.execute("del os.environ['JUPYTER_GUARD_TOKEN']\npd.read_csv('data/clinics.csv')")
        assert res.error["ename"] == "GuardDenied" and "JUPYTER_GUARD_TOKEN" in res.error["evalue"]
        res = await k.execute("%guard status")
        assert "NOT reachable" in res.text
        res = await k.execute("os.environ['JUPYTER_GUARD_TOKEN'] = 'forged'; os.environ['JUPYTER_GUARD_URL'] = good\n"
                              "pd.read_csv('data/clinics.csv')")
        assert res.error["ename"] == "GuardDenied" and "403" in res.error["evalue"]


async def test_read_sql_finds_the_tables_with_sqlglot_and_redacts(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("import pandas as pd, sqlite3\ncon = sqlite3.connect('clinic.db')")
        res = await k.execute("pd.read_sql('SELECT * FROM patients', con)")
        assert res.error["ename"] == "GuardDenied" and "'clinic_patients'" in res.error["evalue"]
        await k.execute("%guard purpose treatment-research")
        res = await k.execute("print(pd.read_sql('SELECT p.* FROM patients AS p', con).to_string())", cell_id="sql-1")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "Ann" in res.text and not any(s in res.text for s in SECRETS)
        (read,) = reads(res)
        assert read["target"] == "clinic.main.patients" and read["effect"] == "redact"
        assert read["columns"] == {"ssn": "mask", "email": "hash"}
        # renamed columns keep their rule; case does not matter
        res = await k.execute("print(pd.read_sql_query('WITH x AS (SELECT SSN AS tax_id, Email FROM patients) "
                              "SELECT tax_id, upper(Email) AS mail FROM x', con).to_string())")
        assert res.reply["content"]["status"] == "ok", res.text
        assert not any(s in res.text.lower() for s in SECRETS), res.text
        res = await k.execute("print(pd.read_sql_table('patients', 'sqlite:///clinic.db').ssn[0])")
        if res.error is None or "sqlalchemy" not in res.text.lower():
            assert SSNS[0] not in res.text
        # a join with an ungoverned table: both decided, the governed one redacts
        res = await k.execute("df = pd.read_sql('SELECT c.city, p.ssn FROM clinics c JOIN patients p ON p.id = c.id', con)")
        assert [(r["target"], r["effect"]) for r in reads(res)] == [("clinic.main.patients", "redact")]
        # what cannot be redacted by name, or parsed at all, is refused
        for sql in ("SELECT ssn || '' FROM patients", "SELECT ssn FROM patients UNION SELECT city FROM clinics",
                    "SELEC ssn FRM patients (", "EXPLAIN SELECT * FROM patients"):
            res = await k.execute(f"pd.read_sql({sql!r}, con)")
            assert res.error and res.error["ename"] == "GuardDenied", (sql, res.text)
        res = await k.execute("print(pd.read_sql('SELECT 1 AS one', con).one[0])")
        assert res.text.strip() == "1"  # reads no table: nothing to decide
        (rec,) = await cell_records(fetch_json, "sql-1")
        assert rec["dataset"] == "clinic_patients" and rec["decision"] == "redact"


async def test_justify_needs_a_reason_once_per_read(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("import pandas as pd")
        res = await k.execute("pd.read_csv('data/grants.csv')")
        assert res.error["ename"] == "GuardDenied" and "%guard justify" in res.error["evalue"]
        assert "Gil Grants" in res.error["evalue"]
        res = await k.execute('%guard justify "quarterly report for the board"')
        assert "Justification stored" in res.text
        res = await k.execute("print(pd.read_csv('data/grants.csv').amount[0])", cell_id="cell-justified")
        assert res.text.strip() == "100"
        res = await k.execute("pd.read_csv('data/grants.csv')")
        assert res.error["ename"] == "GuardDenied"  # used up
        (rec,) = await cell_records(fetch_json, "cell-justified")
        assert rec["decision"] == "justify"
        (dec,) = [r for r in await audit(fetch_json, event_type="decision") if r["cell_id"] == "cell-justified"]
        assert dec["justification"] == "quarterly report for the board"


async def test_chunks_are_redacted_and_renaming_columns_is_refused(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd")
        res = await k.execute("for chunk in pd.read_csv('data/patients.csv', chunksize=2):\n    print(chunk.to_string())")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "Ann Lee" in res.text and not any(s in res.text for s in SECRETS)
        res = await k.execute("with pd.read_csv('data/patients.csv', iterator=True) as r:\n    print(r.get_chunk(3).to_string())")
        assert "Cy Diaz" in res.text and not any(s in res.text for s in SECRETS)
        for kwargs in ("header=None", "names=list('abcde')", "skiprows=1", "index_col='ssn'"):
            res = await k.execute(f"pd.read_csv('data/patients.csv', {kwargs})")
            assert res.error and res.error["ename"] == "GuardDenied", (kwargs, res.text)
            assert not any(s in res.text for s in SECRETS)
        res = await k.execute("print(pd.read_csv('data/patients.csv', usecols=['id', 'name']).to_string())")
        assert "Bo Chan" in res.text  # leaving ruled columns out is fine


async def test_guard_magic_shows_status_and_purposes(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute("%guard purpose")
        assert "none declared" in res.text and "treatment-research" in res.text
        res = await k.execute("%guard purpose bad/name")
        assert "UsageError: a purpose is a name" in res.text
        res = await k.execute("%guard purpose quality-audit")
        assert "known purposes: treatment-research" in res.text
        res = await k.execute("%guard status")
        assert "reachable" in res.text and "quality-audit" in res.text and "pandas" in res.text
        res = await k.execute("%guard purpose --clear")
        assert "withdrawn" in res.text
        res = await k.execute("%guard bogus")
        assert "UsageError: unknown %guard command 'bogus'" in res.text
        # loading twice changes nothing
        res = await k.execute("%load_ext jupyter_guard.kernel\n%reload_ext jupyter_guard.kernel\n"
                              "import pandas as pd\nw = pd.read_csv.__jupyter_guard_original__\n"
                              "print(hasattr(w, '__jupyter_guard_original__'))")
        assert res.text.split()[-1] == "False"  # wrapped once


@pytest.mark.parametrize("module, read", [
    ("polars", "pl.read_csv({!r}).height"),
    ("polars", "pl.scan_csv({!r}).collect().height"),
    ("pyarrow", "pyarrow.csv.read_csv({!r}).num_rows"),
])
async def test_polars_and_pyarrow_allow_deny_and_refuse_redaction(module, read, data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute(f"import importlib.util as u; print(bool(u.find_spec({module!r})))")
        if res.text.strip() != "True":
            pytest.fail(f"{module} is not installed in the kernel's environment (it is in the test extras)")
        await k.execute("%guard purpose treatment-research\nimport polars as pl" if module == "polars"
                        else "%guard purpose treatment-research\nimport pyarrow.csv")
        res = await k.execute("print(" + read.format("data/clinics.csv") + ")")
        assert res.text.strip() == "1", res.text
        assert [(r["dataset"], r["effect"]) for r in reads(res)] == [("clinics", "allow")]
        res = await k.execute(read.format("data/patients.csv"))
        assert res.error["ename"] == "GuardDenied" and "only pandas DataFrames can be redacted" in res.error["evalue"]
        res = await k.execute(read.format("data/grants.csv"))
        assert res.error["ename"] == "GuardDenied" and "%guard justify" in res.error["evalue"]
        if module == "polars":  # a glob reads every file it matches: each is decided
            res = await k.execute(read.format("data/[pc]*.csv"))
            assert res.error["ename"] == "GuardDenied" and "'patients'" in res.error["evalue"]


async def test_sqlalchemy_connections_name_tables_by_their_database(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute("import importlib.util as u; print(bool(u.find_spec('sqlalchemy')))")
        if res.text.strip() != "True":
            pytest.fail("sqlalchemy is not installed in the kernel's environment (it is in the test extras)")
        await k.execute("%guard purpose treatment-research\nimport pandas as pd, sqlalchemy as sa\n"
                        "engine = sa.create_engine('sqlite:///clinic.db')")
        for code in ("pd.read_sql_table('patients', engine)", "pd.read_sql('patients', engine)",
                     "pd.read_sql(sa.text('SELECT * FROM patients'), engine)",
                     "pd.read_sql('SELECT * FROM patients', 'sqlite:///clinic.db')"):
            res = await k.execute(f"df = {code}\nprint(df.to_string())")
            assert res.reply["content"]["status"] == "ok", (code, res.text)
            assert [(r["target"], r["effect"]) for r in reads(res)] == [("clinic.main.patients", "redact")], code
            assert "Ann" in res.text and not any(s in res.text for s in SECRETS), code


@pytest.mark.parametrize(("cell", "code"), [
    ("sub", "import subprocess\nout = subprocess.run(['cat', 'data/patients.csv'], capture_output=True).stdout"),
    ("bang", "!cat data/patients.csv > /dev/null"),
    ("sqlite", "import sqlite3\nrows = sqlite3.connect('clinic.db').execute('select ssn from patients').fetchall()"),
    ("reload", "%unload_ext jupyter_guard.kernel\nimport pandas as pd\ndf = pd.read_csv('data/patients.csv')\n"
               "%load_ext jupyter_guard.kernel"),
])
async def test_cells_that_name_governed_data_are_recorded_even_around_the_hooks(data, jp_fetch, jp_ws_fetch,
                                                                                 fetch_json, cell, code):
    """Issue 14, finding 4: these cells read raw data and left no record at all."""
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute(code, cell_id=f"cell-{cell}")
        (rec,) = await cell_records(fetch_json, f"cell-{cell}")
        assert rec["details"]["seen"] == "code mentions governed data", rec["details"]
        assert rec["details"]["flag"].startswith("the code names governed data")
        assert "patients" in rec["details"]["mentions"]
        assert rec["dataset"] in rec["details"]["mentions"]  # filed under the most sensitive named dataset
        assert (rec["label"], rec["decision"]) == ("restricted", "unchecked")
        assert rec["user"] == "rita"
        # a cell that names nothing governed is still not recorded
        await k.execute("x = 1 + 1", cell_id=f"plain-{cell}")
        await k.execute("print('done')", cell_id=f"after-{cell}")
        assert await cell_records(fetch_json, f"plain-{cell}", expect=1) == []


async def test_the_guard_switched_off_from_user_code_is_seen_by_the_server(data, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        code = ("import jupyter_guard.kernel.hooks as h\nh._ACTIVE = False\n"
                "import pandas as pd\ndf = pd.read_csv('data/patients.csv')")
        await k.execute(code, cell_id="cell-off")
        (rec,) = await cell_records(fetch_json, "cell-off")
        assert rec["details"]["seen"] in ("code mentions governed data", "hooks")  # recorded either way
        assert rec["label"] == "restricted"


@pytest.mark.parametrize("protocol", [None, V1])
async def test_the_output_filter_redacts_what_a_governed_kernel_prints(data, jp_fetch, jp_ws_fetch, protocol):
    """Issue 14: the server scans outputs of kernels that read governed data under redact (or run
    unguarded) before they reach the browser and the saved notebook."""
    literal = "print('ssn ' + '536-80' + '-4398', 'mail ' + 'zoe.q' + '@example.org')"
    async with running_kernel(jp_fetch, jp_ws_fetch, protocol=protocol) as (_, k):
        res = await k.execute(literal)
        assert "536-80-4398" in res.text  # nothing governed read yet: outputs pass as they are
        await k.execute("%guard purpose treatment-research")
        await k.execute("import pandas as pd\ndf = pd.read_csv('data/patients.csv')")
        res = await k.execute(literal)
        assert "536-80-4398" not in res.text and "zoe.q@example.org" not in res.text
        assert "<US_SSN>" in res.text and "<EMAIL_ADDRESS>" in res.text
        res = await k.execute("from IPython.display import HTML\nHTML('<b>' + 'zoe.q' + '@example.org</b>')")
        html_out = json.dumps([o["content"] for o in res.outputs])
        assert "zoe.q@example.org" not in html_out and "&lt;EMAIL_ADDRESS&gt;" in html_out


async def test_an_unguarded_kernel_has_its_outputs_filtered(data, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%unload_ext jupyter_guard.kernel")
        await k.execute("x = 1")  # its reply has no guard stamp: from now on its outputs are filtered
        res = await k.execute("print(open('data/patients.csv').read())")
        # (Presidio rightly takes 123-45-6789 for a placeholder, not an SSN; e-mails are the clear case)
        assert not any(mail in res.text for mail in EMAILS) and "<EMAIL_ADDRESS>" in res.text
