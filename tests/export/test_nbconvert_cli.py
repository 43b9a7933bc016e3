"""`jupyter nbconvert` with GuardPreprocessor (real subprocesses), and the pre-commit manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml
from test_notebook_redaction import PII, PLAN, PNG, make_notebook

from jupyter_guard.audit import AuditLog, AuditQuery, SQLiteAuditStore
from jupyter_guard.credentials import load_audit_key
from jupyter_guard.export import (
    GUARD_METADATA_KEY,
    ExportPlan,
    dumps_notebook,
    load_notebook,
    redact_notebook,
)
from jupyter_guard.nbconvert import GuardPreprocessor

ROOT = Path(__file__).resolve().parents[2]
PREPROCESSOR = '--Exporter.preprocessors=["jupyter_guard.nbconvert.GuardPreprocessor"]'


def nbconvert(path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    # a data dir of the test's own: the default audit dir is then empty, never the user's log
    env = {**os.environ, "JUPYTER_DATA_DIR": str(path.parent / "jupyter-data")}
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", PREPROCESSOR, *args, str(path)],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, check=False, cwd=path.parent,
        env=env,
    )
    if ok:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def saved(tmp_path) -> Path:
    """A notebook as the server saves it: with the plan it used in its metadata."""
    nb = make_notebook()
    nb.metadata[GUARD_METADATA_KEY] = {"export_plan": PLAN.to_metadata(), "sensitivity": "confidential"}
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nb, path)
    return path


def test_to_notebook_gives_the_same_bytes_as_the_engine(saved):
    nbconvert(saved, "--to", "notebook", "--output", "exported")
    cli = (saved.parent / "exported.ipynb").read_bytes()
    nb = load_notebook(saved.read_bytes())
    engine, _ = redact_notebook(nb, ExportPlan.from_metadata(nb.metadata[GUARD_METADATA_KEY]["export_plan"]))
    assert cli == dumps_notebook(engine).encode("utf-8")
    assert cli.decode().startswith(nbformat.writes(engine))  # dumps_notebook is nbformat.writes (+ final newline)
    for value in PII:
        assert value.encode() not in cli
    assert b"withheld" in cli


def test_to_html_has_no_pii_and_says_it_was_redacted(saved):
    nbconvert(saved, "--to", "html")
    page = (saved.parent / "analysis.html").read_text(encoding="utf-8")
    for value in PII:
        assert value not in page, value
    assert PNG not in page
    assert "Redacted export" in page and "confidential-export-justified" in page
    assert "&lt;US_SSN&gt;" in page and "&lt;EMAIL_ADDRESS&gt;" in page
    HTMLParser().feed(page)  # parses


def test_traits_when_the_notebook_has_no_plan(tmp_path):
    path = tmp_path / "plain.ipynb"
    nbformat.write(make_notebook(), path)
    nbconvert(path, "--to", "notebook", "--output", "out",
              "--GuardPreprocessor.policy_note=team rule 7", "--GuardPreprocessor.blocked_cells=blocked")
    cli = (tmp_path / "out.ipynb").read_bytes()
    engine, _ = redact_notebook(load_notebook(path.read_bytes()),
                                ExportPlan("team rule 7", blocked_cells=frozenset({"blocked"})))
    assert cli == dumps_notebook(engine).encode("utf-8")
    assert b"zoe.blocked@example.org" not in cli


def test_plan_for_merges_traits_into_the_stored_plan():
    nb = make_notebook()
    nb.metadata[GUARD_METADATA_KEY] = {"export_plan": {**PLAN.to_metadata(), "blocked_cells": ["a"]}}
    plan = GuardPreprocessor(blocked_cells=["b"], known_secrets=["s3cr3t-value"], policy_note="ignored").plan_for(nb)
    assert plan.blocked_cells == {"a", "b"} and plan.known_secrets == ("s3cr3t-value",)
    assert plan.policy_note == PLAN.policy_note
    plain = GuardPreprocessor(policy_note="mine", drop_unscannable=False).plan_for(make_notebook())
    assert plain == ExportPlan("mine", drop_unscannable=False)


def test_markdown_export_has_no_pii(saved):
    nbconvert(saved, "--to", "markdown")
    text = (saved.parent / "analysis.md").read_text(encoding="utf-8")
    for value in PII:
        assert value not in text
    assert "Redacted export" in text


# -- pre-commit ----------------------------------------------------------------------------------


def test_pre_commit_manifest_names_a_working_entry(tmp_path):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list)
    hook = next(h for h in hooks if h["id"] == "jupyter-guard-scan")
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["entry"] in ("jupyter-guard scan", "jupyter guard scan")
    files = re.compile(hook["files"])
    for name in ("a.ipynb", "b.csv", "c.txt", "d.md", "dir/e.py"):
        assert files.search(name), name
    assert not files.search("f.png")
    exe = shutil.which(hook["entry"].split()[0], path=str(Path(sys.executable).parent))
    assert exe, "the hook's entry is not installed"
    leaky = tmp_path / "leaky.ipynb"
    nbformat.write(make_notebook(), leaky)
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing to see\n")
    run = [exe, *hook["entry"].split()[1:]]
    found = subprocess.run([*run, str(leaky)], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, check=False)
    assert found.returncode == 1, found.stderr  # blocks the commit
    assert not any(v in found.stdout + found.stderr for v in PII)
    ok = subprocess.run([*run, str(clean)], capture_output=True, text=True, timeout=120,
                        stdin=subprocess.DEVNULL, check=False)
    assert ok.returncode == 0, ok.stderr


@pytest.fixture
def server_audit_dir(tmp_path) -> Path:
    """An audit directory as the server leaves it: a key and a log with one record in it."""
    from jupyter_guard.audit import AuditEvent

    d = tmp_path / "audit"
    d.mkdir()
    key = load_audit_key(key_file=str(d / "audit.key"), provider=None, create=True)
    with AuditLog(SQLiteAuditStore(path=str(d / "audit.sqlite")), key) as log:
        log.append(AuditEvent(event_type="decision", user="rita", action="read", target="/data/x.csv"))
    return d


def _exports(audit_dir: Path):
    key = load_audit_key(key_file=str(audit_dir / "audit.key"), provider=None, create=False)
    with AuditLog(SQLiteAuditStore(path=str(audit_dir / "audit.sqlite")), key) as log:
        assert log.verify().ok
        return log.query(AuditQuery(event_type="export"))


def test_an_export_is_recorded_in_the_servers_log_before_it_is_written(saved, server_audit_dir):
    out = nbconvert(saved, "--to", "html", f"--GuardPreprocessor.audit_dir={server_audit_dir}")
    assert "export recorded" in out.stderr
    [record] = _exports(server_audit_dir)
    rec = record.event
    assert rec.user and rec.action == "export" and rec.notebook == str(saved)
    assert rec.label == "confidential" and rec.decision == "redact"
    assert rec.details["via"] == "nbconvert" and rec.details["outputs_scanned"] > 0
    assert rec.details["entities"].get("US_SSN", 0) >= 1  # counts, never values
    as_text = json.dumps(record.to_dict(), default=str)
    for value in PII:
        assert value not in as_text


def test_without_a_log_auto_exports_and_says_it_is_not_recorded(saved):
    out = nbconvert(saved, "--to", "html")
    assert "NOT recorded" in out.stderr and "audit_dir" in out.stderr
    assert (saved.parent / "analysis.html").exists()


def test_required_refuses_an_export_it_cannot_record(saved, tmp_path):
    out = nbconvert(saved, "--to", "html", "--GuardPreprocessor.audit=required",
                    f"--GuardPreprocessor.audit_dir={tmp_path / 'nowhere'}", ok=False)
    assert out.returncode != 0
    assert "refused" in out.stderr and "cannot be recorded" in out.stderr
    assert not (saved.parent / "analysis.html").exists()


def test_required_with_the_log_records(saved, server_audit_dir):
    nbconvert(saved, "--to", "notebook", "--output", "exported", "--GuardPreprocessor.audit=required",
              f"--GuardPreprocessor.audit_dir={server_audit_dir}")
    assert len(_exports(server_audit_dir)) == 1 and (saved.parent / "exported.ipynb").exists()
