"""`jupyter guard ...` end to end: the real entry point, real files, real exit codes."""

from __future__ import annotations

import csv
import io
import json
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
