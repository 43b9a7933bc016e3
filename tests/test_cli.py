"""`jupyter guard ...` end to end: the real entry point, real files, real exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sqlite3
import subprocess
import sys

import pytest
from conftest import write_catalog

from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
from jupyter_guard.cli import main
from jupyter_guard.credentials import load_audit_key


def run(*args: str) -> subprocess.CompletedProcess:
    """Through `jupyter guard`, as a user types it (jupyter dispatches to jupyter-guard)."""
    return subprocess.run(
        [sys.executable, "-m", "jupyter", "guard", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_catalog_validate_ok_and_every_problem_with_file_line(tmp_path):
    good = write_catalog(tmp_path / "good")
    out = run("catalog", "validate", str(good), "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "OK: 4 datasets (1 public, 1 internal, 1 confidential, 1 restricted), 7 policy rules" in out.stdout

    bad = write_catalog(
        tmp_path / "bad",
        datasets="datasets:\n  - {name: a, label: nope, steward: S, locations: [a]}\n  - {name: a, label: public, steward: S, locations: [b]}\n",
        policy="rules:\n  - {name: r, roles: [ghost], effect: allow}\n",
    )
    out = run("catalog", "validate", str(bad))
    assert out.returncode == 1
    assert f"{bad}/datasets.yaml:2: unknown label 'nope'" in out.stderr
    assert f"{bad}/policy.yaml:2: unknown role 'ghost'" in out.stderr
    assert "2 problem(s); the catalog is not valid" in out.stderr


def test_catalog_init_writes_a_valid_catalog(tmp_path, capsys):
    assert main(["catalog", "init", str(tmp_path / "new")]) == 0
    assert main(["catalog", "validate", str(tmp_path / "new"), "--root", str(tmp_path)]) == 0
    assert "OK: 1 datasets" in capsys.readouterr().out
    assert main(["catalog", "init", str(tmp_path / "new")]) == 2  # never overwrites


@pytest.fixture
def audit_log_dir(tmp_path):
    """A real audit log with 30 records from three users."""
    d = tmp_path / "audit"
    d.mkdir()
    key = load_audit_key(key_file=str(d / "audit.key"), provider=None, key_name="audit-key", create=True)
    with AuditLog(SQLiteAuditStore(path=str(d / "audit.sqlite")), key) as log:
        for i in range(30):
            user = ("rita", "olaf", "dana")[i % 3]
            log.append(
                AuditEvent(
                    event_type="decision",
                    user=user,
                    action="read",
                    target=f"/data/f{i}.csv",
                    dataset="patients" if i % 2 else "clinics",
                    label="restricted" if i % 2 else "public",
                    decision="deny" if i % 5 == 0 else "allow",
                    notebook=f"nb{i % 4}.ipynb",
                )
            )
    return d


def test_audit_verify_ok_then_names_the_first_edited_record(audit_log_dir):
    out = run("audit", "verify", "--audit-dir", str(audit_log_dir))
    assert out.returncode == 0, out.stderr
    assert "OK: 30 records" in out.stdout
    con = sqlite3.connect(audit_log_dir / "audit.sqlite")
    con.execute("UPDATE audit_log SET payload = replace(payload, 'f12.csv', 'f99.csv') WHERE seq = 13")
    con.commit()
    con.close()
    out = run("audit", "verify", "--audit-dir", str(audit_log_dir))
    assert out.returncode == 1
    assert "TAMPERED: record 13" in out.stderr


def test_audit_verify_without_the_key_is_a_clear_error(audit_log_dir):
    (audit_log_dir / "audit.key").unlink()
    out = run("audit", "verify", "--audit-dir", str(audit_log_dir))
    assert out.returncode == 2
    assert "audit key file" in out.stderr and "does not exist" in out.stderr


def test_audit_query_filters_and_json(audit_log_dir, capsys):
    assert main(["audit", "query", "--audit-dir", str(audit_log_dir), "--user", "rita", "--label", "restricted", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["user"] == "rita" and r["label"] == "restricted" for r in rows)
    assert len(rows) == len([i for i in range(30) if i % 3 == 0 and i % 2])
    assert main(["audit", "query", "--audit-dir", str(audit_log_dir), "--decision", "deny", "--notebook", "nb0.ipynb"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len([i for i in range(30) if i % 5 == 0 and i % 4 == 0])
    assert all(" deny " in line for line in lines)
    assert main(["audit", "query", "--audit-dir", str(audit_log_dir), "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""


def test_audit_export_jsonl_and_csv(audit_log_dir, tmp_path, capsys):
    out = tmp_path / "all.jsonl"
    assert main(["audit", "export", "--audit-dir", str(audit_log_dir), "--format", "jsonl", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 31))
    assert all(r["mac"] for r in rows)
    assert main(["audit", "export", "--audit-dir", str(audit_log_dir), "--format", "csv", "--user", "olaf"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 10 and {r["user"] for r in table} == {"olaf"}
    assert {"seq", "time", "user", "dataset", "label", "decision", "mac"} <= set(table[0])


def test_audit_commands_on_a_missing_log_fail_clearly(tmp_path):
    out = run("audit", "query", "--audit-dir", str(tmp_path / "none"))
    assert out.returncode == 2 and "no audit database at" in out.stderr


# -- the central PostgreSQL store (c.GuardApp.audit_store_class) -----------------------------

PG_DSN = os.environ.get("JUPYTER_GUARD_TEST_PG") or "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture(scope="module")
def pg_database():
    """A fresh PostgreSQL database for these tests (dropped afterwards); its DSN. Fails, never
    skips, when the server is unreachable."""
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        pytest.fail(f"the PostgreSQL server for the tests is not reachable ({type(e).__name__}); "
                    "start it or set JUPYTER_GUARD_TEST_PG")
    name = f"jg_cli_{secrets.token_hex(4)}"
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
        params["dbname"] = name
        yield psycopg.conninfo.make_conninfo(**params)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def pg_config(pg_database, tmp_path):
    """A server config file selecting the PostgreSQL store (its own table) and a key file."""
    table = f"audit_{secrets.token_hex(4)}"
    cfg = tmp_path / "jupyter_server_config.py"
    cfg.write_text(
        "c = get_config()  # noqa\n"
        "c.GuardApp.audit_store_class = 'jupyter_guard.audit.postgres.PostgresAuditStore'\n"
        f"c.PostgresAuditStore.dsn = {pg_database!r}\n"
        f"c.PostgresAuditStore.table = {table!r}\n"
        f"c.GuardApp.audit_key_file = {str(tmp_path / 'central.key')!r}\n"
    )
    return cfg, pg_database, table


def test_audit_verify_and_query_a_postgres_store_through_the_server_config(pg_config, capsys):
    from jupyter_guard.audit.postgres import PostgresAuditStore

    cfg, dsn, table = pg_config
    key = load_audit_key(key_file=str(cfg.parent / "central.key"), provider=None, key_name="audit-key", create=True)
    with AuditLog(PostgresAuditStore(dsn=dsn, table=table), key) as log:
        for i in range(12):
            log.append(AuditEvent(event_type="decision", user=("rita", "olaf")[i % 2], dataset="patients",
                                  decision="deny" if i % 3 == 0 else "allow"))
    out = run("audit", "verify", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "OK: 12 records" in out.stdout
    assert main(["audit", "query", "--config", str(cfg), "--user", "olaf", "--decision", "deny", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in rows] == [i + 1 for i in range(12) if i % 2 and i % 3 == 0]
    # --store-class and --dsn instead of a config file
    assert main(["audit", "verify", "--store-class", "jupyter_guard.audit.postgres.PostgresAuditStore",
                 "--dsn", f"{dsn} options='-c search_path=public'", "--key-file", str(cfg.parent / "central.key")]) == 2
    assert "does not exist" in capsys.readouterr().err  # the default table is not this test's table
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(sql.SQL("UPDATE {} SET decision = 'allow' WHERE seq = 4").format(sql.Identifier(table)))
    out = run("audit", "verify", "--config", str(cfg))
    assert out.returncode == 1 and "TAMPERED: record 4" in out.stderr, out.stderr


def test_audit_import_moves_a_verified_sqlite_log_into_postgres(audit_log_dir, pg_config, capsys):
    from jupyter_guard.audit import AuditQuery
    from jupyter_guard.audit.postgres import PostgresAuditStore

    cfg, dsn, table = pg_config
    src = audit_log_dir / "audit.sqlite"
    out = run("audit", "import", "--config", str(cfg), "--from-db", str(src), "--from-key-file",
              str(audit_log_dir / "audit.key"))
    assert out.returncode == 0, out.stderr
    assert "imported 30 records" in out.stdout and "OK: target verified, 31 records" in out.stdout
    out = run("audit", "verify", "--config", str(cfg))
    assert out.returncode == 0 and "OK: 31 records" in out.stdout, out.stderr
    with AuditLog(SQLiteAuditStore(path=str(src)), load_audit_key(key_file=str(audit_log_dir / "audit.key"))) as old:
        before = old.query(AuditQuery(limit=None))
    key = load_audit_key(key_file=str(cfg.parent / "central.key"))
    with AuditLog(PostgresAuditStore(dsn=dsn, table=table, read_only=True), key, group_commit=False) as new:
        after = new.query(AuditQuery(limit=None))
    assert [r.seq for r in after] == list(range(1, 32))
    for a, b in zip(before, after):
        origin = b.event.details["imported_from"]
        assert origin["source"] == str(src) and origin["seq"] == a.seq and origin["time"] == a.time
        assert origin["mac"] == a.mac
        assert {k: v for k, v in b.event.to_dict().items() if k != "details"} == \
            {k: v for k, v in a.event.to_dict().items() if k != "details"}
    assert after[-1].event.event_type == "audit_import" and after[-1].event.details["records"] == 30
    assert main(["audit", "query", "--config", str(cfg), "--user", "olaf", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 10
    # a second import of the same file is refused (it would duplicate every record)
    out = run("audit", "import", "--config", str(cfg), "--from-db", str(src), "--from-key-file",
              str(audit_log_dir / "audit.key"))
    assert out.returncode == 1 and "refusing to import" in out.stderr and "again" in out.stderr


def test_audit_import_refuses_a_tampered_source(audit_log_dir, pg_config, tmp_path):
    cfg, dsn, table = pg_config
    con = sqlite3.connect(audit_log_dir / "audit.sqlite")
    con.execute("UPDATE audit_log SET payload = replace(payload, 'f7.csv', 'f0.csv') WHERE seq = 8")
    con.commit()
    con.close()
    out = run("audit", "import", "--config", str(cfg), "--from-db", str(audit_log_dir / "audit.sqlite"),
              "--from-key-file", str(audit_log_dir / "audit.key"))
    assert out.returncode == 1
    assert "refusing to import" in out.stderr and "TAMPERED: record 8" in out.stderr
    assert not (tmp_path / "central.key").exists()  # nothing was touched: no key, no tables
    out = run("audit", "verify", "--config", str(cfg))
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_service_takes_its_own_traitlets_arguments(tmp_path, capsys):
    """`jupyter guard service --config F` as the Hub deployment guide writes it: the arguments are
    the service's (traitlets), and a config file it cannot read stops it with why."""
    import pytest

    from jupyter_guard.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["service", "--config", str(tmp_path / "missing.py")])
    assert stop.value.code == 1
    token = tmp_path / "tokens.json"
    assert main(["service", "add-token", "bob", "--tokens-file", str(token)]) == 0
    issued = capsys.readouterr().out.strip()
    import hashlib
    import json

    assert json.loads(token.read_text()) == {hashlib.sha256(issued.encode()).hexdigest(): "bob"}
    assert oct(token.stat().st_mode & 0o777) == "0o600"
