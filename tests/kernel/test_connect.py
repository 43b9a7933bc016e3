"""``connect("warehouse")`` end to end: a real PostgreSQL, a real jupyter_server with jupyter_guard,
a real ipykernel over the real websocket (both protocols), the secret in a real provider (files).

The PostgreSQL server is the one on this machine (``JUPYTER_GUARD_TEST_PG``: a libpq DSN of a
superuser connection; default the loopback server, see README "Development"). The tests make
their own database and LOGIN role with a random password, and drop them at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import nbformat
import psycopg
import pytest
from conftest import DATASETS, POLICY, TokenUsers, auth, write_catalog
from kernel_client import V1, running_kernel
from psycopg import sql

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_DSN = os.environ.get("JUPYTER_GUARD_TEST_PG") or DEFAULT_DSN
SSNS = ["123-45-6789", "234-56-7891"]


def new_password() -> str:
    # characters a URL must quote (@ / : %) so every spelling of the secret is exercised
    return f"pw-{secrets.token_hex(6)}@/:%{secrets.token_hex(6)}"


def spellings(password: str) -> list[str]:
    """How a password may show up: as is, URL-quoted (SQLAlchemy's and the template's way)."""
    return sorted({password, quote(password, safe=" +"), quote(password, safe=""), quote_plus(password)})


@dataclass
class Postgres:
    dsn: str  # the superuser connection
    host: str
    port: str
    database: str
    role: str
    password: str
    checks_passwords: bool  # False on a trust-auth server (this machine kind): a wrong password connects

    def url_template(self, database: str | None = None) -> str:
        db = database or self.database
        if self.host.startswith("/"):  # a Unix socket directory
            return f"postgresql+psycopg://{{user}}:{{password}}@/{db}?host={self.host}&port={self.port}"
        return f"postgresql+psycopg://{{user}}:{{password}}@{self.host}:{self.port}/{db}"

    def admin(self, database: str | None = None):
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        if database:
            params["dbname"] = database
        return psycopg.connect(psycopg.conninfo.make_conninfo(**params), autocommit=True, connect_timeout=10)

    def set_password(self, password: str) -> None:
        with self.admin() as con:
            con.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.role), sql.Literal(password)))
        self.password = password


@pytest.fixture(scope="session")
def pg():
    """A fresh database with public.patients and a LOGIN role that may read it."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        shown = {k: ("***" if k == "password" else v) for k, v in psycopg.conninfo.conninfo_to_dict(PG_DSN).items()}
        pytest.fail(f"the PostgreSQL server for the tests is not reachable with JUPYTER_GUARD_TEST_PG={shown} "
                    f"({type(e).__name__}: {str(e).strip()}). Start it (.ci/run does) or point the variable at "
                    "another server (README, Development).")
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    host = str(params.get("host") or admin.info.host)
    port = str(params.get("port") or admin.info.port)
    suffix = secrets.token_hex(4)
    db, role = f"jg_test_{suffix}", f"jg_reader_{suffix}"
    pgx = Postgres(PG_DSN, host, port, db, role, new_password(), checks_passwords=False)
    try:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(pgx.password)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        with pgx.admin(db) as con:
            con.execute("CREATE TABLE public.patients (id int, ssn text)")
            con.execute("INSERT INTO public.patients VALUES (1, %s), (2, %s)", SSNS)
            con.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(role)))
            con.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
            con.execute(sql.SQL("GRANT SELECT ON public.patients TO {}").format(sql.Identifier(role)))
        try:  # does this server check passwords at all? (trust auth does not)
            psycopg.connect(host=host, port=port, dbname=db, user=role, password="not-" + pgx.password,
                            connect_timeout=10).close()
        except psycopg.OperationalError:
            pgx.checks_passwords = True
        yield pgx
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


# -- the catalog, the secret, the server -------------------------------------------------------

CREDENTIAL_RULES = """\
rules:
  - name: researchers-connect
    labels: [confidential, internal]
    actions: [credential]
    roles: [researcher]
    effect: allow
"""


def sources_yaml(pg: Postgres, clinic_db: Path) -> str:
    steward = "Dana Steward <dana@example.org>"
    return textwrap.dedent(f"""\
        sources:
          - name: warehouse
            url: {pg.url_template()}
            credential: warehouse
            user: {pg.role}
            label: confidential
            steward: {steward}
          - name: warehouse_gone
            description: the same server and secret, a database that does not exist (a failing connection)
            url: {pg.url_template(pg.database + "_gone")}
            credential: warehouse
            user: {pg.role}
            label: confidential
            steward: {steward}
          - name: warehouse_wrong
            description: the same role with a secret that is not its password
            url: {pg.url_template()}
            credential: warehouse-wrong
            user: {pg.role}
            label: confidential
            steward: {steward}
          - name: clinic
            url: sqlite:///{clinic_db}
            label: internal
            steward: Ops Team <ops@example.org>
        """)


PG_DATASETS = """\
  - name: pg_patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations:
      - table: warehouse.public.patients
    columns:
      ssn: {entity: US_SSN, rule: mask}
    purposes: [treatment-research]
  - name: clinic_patients
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations:
      - table: clinic.main.patients
    columns:
      ssn: {entity: US_SSN, rule: mask}
    purposes: [treatment-research]
"""


@pytest.fixture
def clinic_db(tmp_path) -> Path:
    path = tmp_path / "sqlite" / "clinic.db"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE patients (id INTEGER, ssn TEXT)")
    con.executemany("INSERT INTO patients VALUES (?, ?)", list(enumerate(SSNS, 1)))
    con.commit()
    con.close()
    return path


@pytest.fixture
def catalog_dir(tmp_path, pg, clinic_db):
    directory = write_catalog(tmp_path / "catalog", DATASETS + PG_DATASETS, POLICY.replace("rules:\n", CREDENTIAL_RULES, 1))
    (directory / "sources.yaml").write_text(sources_yaml(pg, clinic_db))
    return directory


@pytest.fixture
def secret_dir(tmp_path, pg) -> Path:
    d = tmp_path / "secrets"
    d.mkdir(mode=0o700)
    (d / "warehouse").write_text(pg.password + "\n")
    (d / "warehouse-wrong").write_text(new_password())
    return d


@pytest.fixture
def guard_config(catalog_dir, audit_dir, secret_dir) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guard": True}, "identity_provider_class": TokenUsers},
        "GuardApp": {
            "catalog_dir": str(catalog_dir),
            "audit_dir": str(audit_dir),
            "principal_source": "identity",
            "catalog_reload_interval": 0,
            "credential_providers": ["jupyter_guard.credentials.FileSecrets"],
        },
        "FileSecrets": {"directory": str(secret_dir)},
    }


def reads(result) -> list[dict]:
    return result.reply["metadata"]["jupyter_guard"]["reads"]


def assert_no_secret(text: str | bytes, passwords: list[str], where: str) -> None:
    for password in passwords:
        for spelling in spellings(password):
            needle = spelling.encode() if isinstance(text, bytes) else spelling
            assert needle not in text, f"a spelling of the password is in {where}"


def notebook_of(cells: list[tuple[str, list[dict]]]) -> dict:
    nb = nbformat.v4.new_notebook()
    for code, outputs in cells:
        cell = nbformat.v4.new_code_cell(code)
        cell.outputs = [nbformat.v4.output_from_msg({"header": {"msg_type": o["msg_type"]}, "content": o["content"]})
                        for o in outputs]
        nb.cells.append(cell)
    return nb


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [None, V1])
async def test_connect_reads_postgres_redacted_and_the_password_shows_nowhere(
        protocol, pg, jp_serverapp, jp_fetch, jp_ws_fetch, jp_root_dir, audit_dir):
    cells: list[tuple[str, list[dict]]] = []
    received: list = []

    async def run(k, code, **kw):
        res = await k.execute(code, **kw)
        cells.append((code, res.outputs))
        received.append({"reply": res.reply, "outputs": res.outputs})
        return res

    async with running_kernel(jp_fetch, jp_ws_fetch, path="leak.ipynb", protocol=protocol) as (kernel_id, k):
        res = await run(k, "import sys\nfrom jupyter_guard import connect\nprint('sqlalchemy' in sys.modules)")
        assert res.text.strip() == "False"  # importing connect imports no SQLAlchemy
        await run(k, "%guard purpose treatment-research\nimport pandas as pd")
        res = await run(k, 'engine = connect("warehouse")\nprint(type(engine).__name__)', cell_id="cell-connect")
        assert res.reply["content"]["status"] == "ok", res.text
        assert res.text.strip() == "Engine"
        assert [(r["reader"], r["target"], r["effect"]) for r in reads(res)] == \
            [("jupyter_guard.connect", "source:warehouse", "allow")]

        # pd.read_sql through it is governed by the table's labels, named warehouse.public.patients
        res = await run(k, 'df = pd.read_sql("SELECT * FROM patients ORDER BY id", engine)\nprint(df.to_string())')
        assert res.reply["content"]["status"] == "ok", res.text
        assert not any(s in res.text for s in SSNS) and "6789" in res.text  # masked, last digits kept
        assert [(r["target"], r["dataset"], r["effect"]) for r in reads(res)] == \
            [("warehouse.public.patients", "pg_patients", "redact")]
        # the database's real name in the SQL is the same table
        res = await run(k, f'print(pd.read_sql("SELECT ssn FROM {pg.database}.public.patients", engine).ssn[0])')
        assert res.reply["content"]["status"] == "ok", res.text
        assert SSNS[0] not in res.text and [r["target"] for r in reads(res)] == ["warehouse.public.patients"]

        # every way of showing the URL or the password
        res = await run(k, "print(engine.url)")
        assert "***" in res.text and pg.role in res.text
        res = await run(k, "print(engine.url.render_as_string(hide_password=False))")
        assert f"{pg.role}:***@" in res.text
        res = await run(k, "engine.url.password")
        assert res.text.strip() == "'***'"
        res = await run(k, "import sys\nprint(engine.url.password, file=sys.stderr)\n"
                           "from IPython.display import display, HTML\n"
                           "display(HTML('<b>' + engine.url.password + '</b>'))")
        assert "***" in res.text

        # a failed connection's traceback, verbose: frame locals hold the connection parameters
        await run(k, "%xmode Verbose")
        res = await run(k, 'gone = connect("warehouse_gone")\ngone.connect()')
        assert res.error and res.error["ename"] == "OperationalError", res.text
        assert "***" in res.text  # the password was in the locals, and was masked
        if pg.checks_passwords:
            res = await run(k, 'wrong = connect("warehouse_wrong")\nwrong.connect()')
            assert res.error and res.error["ename"] == "OperationalError", res.text
            assert "password authentication failed" in res.text
        await run(k, "%xmode Context")

        # the kernel's own masking, seen on its ZMQ channels directly (not through the server's filter)
        direct = await direct_outputs(jp_serverapp.kernel_manager, kernel_id,
                                      "print(engine.url.render_as_string(hide_password=False))")
        assert f"{pg.role}:***@" in direct and pg.role in direct
        received.append(direct)

    everything = json.dumps(received)
    assert_no_secret(everything, [pg.password], "what the websocket client received")

    # the notebook with those outputs, saved through the contents API ...
    nb = notebook_of(cells)
    await jp_fetch("api", "contents", "leak.ipynb", method="PUT", headers=auth("tok-rita"),
                   body=json.dumps({"type": "notebook", "format": "json", "content": nb}))
    saved = (jp_root_dir / "leak.ipynb").read_bytes()
    assert b"render_as_string" in saved and b"***" in saved
    assert_no_secret(saved, [pg.password], "the saved notebook")
    # ... exported to HTML by nbconvert ...
    html = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--stdout",
                           str(jp_root_dir / "leak.ipynb")], capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=300)
    assert html.returncode == 0, html.stderr.decode()[-2000:]
    assert b"render_as_string" in html.stdout
    assert_no_secret(html.stdout, [pg.password], "the nbconvert HTML export")
    # ... and the audit store's bytes (the database, its WAL, everything in the audit directory)
    await asyncio.sleep(0.3)  # cell records are written when the reply passes the server
    files = [p for p in Path(audit_dir).rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert_no_secret(p.read_bytes(), [pg.password], f"the audit file {p.name}")


async def direct_outputs(kernel_manager, kernel_id: str, code: str) -> str:
    """Run ``code`` on the kernel's own ZMQ channels (no server in between); its outputs as text."""
    from jupyter_client.asynchronous import AsyncKernelClient

    kc = AsyncKernelClient()
    kc.load_connection_info(kernel_manager.get_kernel(kernel_id).get_connection_info())
    kc.start_channels()
    texts: list[str] = []

    def hook(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            texts.append(c["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            texts.extend(str(v) for v in c["data"].values())
        elif msg["msg_type"] == "error":
            texts.extend(c["traceback"])

    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive(code, output_hook=hook, timeout=120)
        texts.append(json.dumps(reply["content"]))
    finally:
        kc.stop_channels()
    return "".join(texts)


async def test_a_user_without_a_credential_rule_gets_guard_denied_and_no_secret(pg, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch, token="tok-olaf") as (_, k):
        res = await k.execute('from jupyter_guard import connect\nengine = connect("warehouse")', cell_id="olaf-1")
        assert res.error and res.error["ename"] == "GuardDenied", res.text
        assert "olaf" in res.error["evalue"] and "warehouse" in res.error["evalue"]
        assert "Dana Steward <dana@example.org>" in res.error["evalue"]  # whom to ask
        assert [(r["target"], r["effect"], r["permitted"]) for r in reads(res)] == [("source:warehouse", "deny", False)]
        res = await k.execute("print('engine' in dir())\nimport sys\nprint('sqlalchemy' in sys.modules)")
        assert res.text.split() == ["False", "False"]  # no engine, not even SQLAlchemy imported
        res = await k.execute('connect("no_such_source")')
        assert res.error["ename"] == "GuardDenied" and "no_such_source" in res.error["evalue"]
        assert "warehouse" in res.error["evalue"]  # the sources there are
        assert_no_secret(json.dumps(res.outputs), [pg.password], "olaf's outputs")
    records = (await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                                params={"order": "asc", "limit": "500"}))["records"]
    (denied,) = [r for r in records if r.get("event_type") == "credential" and r["user"] == "olaf"]
    assert denied["dataset"] == "warehouse" and denied["decision"] == "deny" and denied["cell_id"] == "olaf-1"
    assert_no_secret(json.dumps(records), [pg.password], "the audit records")


async def test_a_rotated_secret_is_used_by_the_next_connect(pg, secret_dir, jp_fetch, jp_ws_fetch, audit_dir):
    # compared in the kernel: a printed hex digest may hold what the output filter takes for an ID
    fingerprint = "import hashlib\nprint(hashlib.sha256({}.url.password.encode()).hexdigest() == {!r})"
    old = pg.password
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd\nfrom jupyter_guard import connect")
        res = await k.execute('e1 = connect("warehouse")\nprint(len(pd.read_sql("SELECT id FROM patients", e1)))')
        assert res.text.strip() == "2", res.text
        res = await k.execute(fingerprint.format("e1", hashlib.sha256(old.encode()).hexdigest()))
        assert res.text.strip() == "True", res.text

        new = new_password()
        pg.set_password(new)  # the database first, then the provider (as an operator rotates)
        (secret_dir / "warehouse").write_text(new)
        try:
            res = await k.execute('e2 = connect("warehouse")\nprint(len(pd.read_sql("SELECT id FROM patients", e2)))')
            assert res.text.strip() == "2", res.text
            res = await k.execute(fingerprint.format("e2", hashlib.sha256(new.encode()).hexdigest()))
            assert res.text.strip() == "True", res.text  # no server restart, no cache
            if pg.checks_passwords:  # the old engine's new connections are refused now
                res = await k.execute("e1.dispose()\ne1.connect()")
                assert res.error and "password authentication failed" in res.text
            res = await k.execute("print(e2.url.render_as_string(hide_password=False))\n"
                                  "print(e1.url.render_as_string(hide_password=False))")
            assert res.text.count(":***@") == 2  # both the new and the rotated-out password are masked
            assert_no_secret(res.text, [old, new], "the outputs after rotation")
        finally:
            pg.set_password(old)
            (secret_dir / "warehouse").write_text(old)
    for p in (p for p in Path(audit_dir).rglob("*") if p.is_file()):
        assert_no_secret(p.read_bytes(), [old, new], f"the audit file {p.name}")


async def test_a_sqlite_file_source_needs_no_secret(pg, clinic_db, jp_fetch, jp_ws_fetch):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport pandas as pd\nfrom jupyter_guard import connect")
        res = await k.execute('clinic = connect("clinic")\nprint(pd.read_sql("SELECT * FROM patients", clinic).to_string())')
        assert res.reply["content"]["status"] == "ok", res.text
        assert not any(s in res.text for s in SSNS) and "6789" in res.text
        assert [(r["target"], r["dataset"], r["effect"]) for r in reads(res)] == \
            [("source:clinic", "clinic", "allow"), ("clinic.main.patients", "clinic_patients", "redact")]
        # a connection of it, and an engine with other execution options, name the same tables
        for con in ("clinic.connect()", "clinic.execution_options(isolation_level='AUTOCOMMIT').connect()"):
            res = await k.execute(f"with {con} as c:\n    print(pd.read_sql('SELECT ssn FROM patients', c).ssn[0])")
            assert res.reply["content"]["status"] == "ok", res.text
            assert SSNS[0] not in res.text and [r["target"] for r in reads(res)] == ["clinic.main.patients"], con
        res = await k.execute("print(clinic.url)")
        assert res.text.strip() == f"sqlite:///{clinic_db}"  # nothing to mask, nothing masked
        # engine keyword arguments reach create_engine; bad ones are a GuardDenied naming the source
        res = await k.execute('e = connect("clinic", echo=False, pool_pre_ping=True)\nprint(e.pool._pre_ping)')
        assert res.text.strip() == "True"
        res = await k.execute('connect("clinic", no_such_option=1)')
        assert res.error["ename"] == "GuardDenied" and "'clinic'" in res.error["evalue"]


async def test_a_failing_provider_is_a_guard_denied_naming_source_and_provider(pg, secret_dir, jp_fetch, jp_ws_fetch):
    (secret_dir / "warehouse").unlink()
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        res = await k.execute('from jupyter_guard import connect\nconnect("warehouse")')
        assert res.error and res.error["ename"] == "GuardDenied", res.text
        assert "warehouse" in res.error["evalue"]
        assert_no_secret(res.text, [pg.password], "the error")


# -- the kernel's masker alone -------------------------------------------------------------------


def test_the_masker_wraps_the_session_only_once_secrets_exist_and_masks_every_part():
    from jupyter_client.session import Session

    from jupyter_guard.kernel.masking import SessionMasker

    session = Session(key=b"k")
    masker = SessionMasker()
    masker.register([], session)
    assert "serialize" not in vars(session)  # no secrets: not wrapped, zero cost
    password = "pa'ss@w/rd:%x"
    masker.register([password], session)
    assert "serialize" in vars(session)
    masker.register([password], session)  # idempotent
    content = {"name": "stdout", "text": f"url: postgresql://u:{quote(password, safe=' +')}@h/db and {password!r}",
               "data": {"text/html": [f"<b>{password}</b>"]}, "traceback": [f"password='{password}'"]}
    msg = session.msg("stream", content)
    frames = session.serialize(msg)
    packed = b"".join(frames)
    assert b"***" in packed and b"pa'ss" not in packed and b"pa\\'ss" not in packed
    assert msg["content"] is content and password in content["text"]  # the caller's message is untouched
    # a relayed message with packed content
    raw = session.msg("stream", {})
    raw["content"] = json.dumps({"text": password}).encode()
    assert password.encode() not in b"".join(session.serialize(raw))
    masker.clear()
    assert "serialize" not in vars(session)
