"""`jupyter guard scan` finds secrets (detect-secrets) in notebooks and text files, never printing them."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from jupyter_guard.cli import main
from jupyter_guard.scan_secrets import SecretScanner

AWS_KEY = "AKIAZ3MX7Q2LPRV4WT6N"
DB_PASSWORD = "Xk9vQ2mLp7rT"
CONN = f"postgresql+psycopg://alice:{DB_PASSWORD}@db.example.org:5432/warehouse"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
       ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
VALUES = [AWS_KEY, DB_PASSWORD, JWT, GITHUB, JWT.split(".")[2]]


def leaky_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Loading the data"),
        nbformat.v4.new_code_cell(f"import boto3\nAWS_ACCESS_KEY_ID = \"{AWS_KEY}\"\ns3 = boto3.client('s3')"),
        nbformat.v4.new_code_cell("print(engine.url.render_as_string(hide_password=False))", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="connecting...\n" + CONN + "\n"),
        ]),
        nbformat.v4.new_code_cell("token", outputs=[
            nbformat.v4.new_output("execute_result", data={"text/plain": repr(JWT)}, execution_count=3),
        ]),
        nbformat.v4.new_code_cell("fail()", outputs=[
            nbformat.v4.new_output("error", ename="ValueError", evalue="bad token",
                                   traceback=["\x1b[0;31mValueError\x1b[0m: bad token",
                                              f"\x1b[0;32mgh\x1b[0m = {GITHUB}"]),
        ]),
        nbformat.v4.new_code_cell("import pandas as pd\ndf = pd.read_csv('clinics.csv')", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}),
        ]),
    ]
    return nb


def clean_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Connect by name: the password comes from the server"),
        nbformat.v4.new_code_cell("from jupyter_guard import connect\nengine = connect('warehouse')"),
        nbformat.v4.new_code_cell("total = sum(values)\ntotal", outputs=[
            nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=2)]),
        nbformat.v4.new_code_cell("print(masked)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="password = ***\n")]),
    ]
    return nb


@pytest.fixture
def notebooks(tmp_path):
    nbformat.write(leaky_notebook(), tmp_path / "leaky.ipynb")
    nbformat.write(clean_notebook(), tmp_path / "clean.ipynb")
    return tmp_path


def scan_json(capsys, *args):
    code = main(["scan", "--json", *map(str, args)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.out + captured.err


def line_of(nb, loc) -> str:
    """The text a notebook finding's location points at (as the scanner saw it)."""
    import re

    cell = nb.cells[loc["cell"]]
    if loc["output"] is None:
        text = cell.source
    else:
        out = cell.outputs[loc["output"]]
        if out.output_type == "stream":
            text = out.text
        elif out.output_type == "error":
            text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", "\n".join(out.traceback))
        else:
            text = out.data[loc["mime"]]
    return text.splitlines()[loc["line"] - 1]


def test_a_notebook_with_secrets_in_sources_and_outputs(notebooks, capsys):
    code, found, printed = scan_json(capsys, notebooks / "leaky.ipynb")
    assert code == 1
    nb = nbformat.read(notebooks / "leaky.ipynb", as_version=4)
    secrets = [f for f in found if f["entity_type"].startswith("SECRET:")]
    got = {(f["entity_type"], f["location"]["cell"], f["location"]["output"], f["location"]["line"],
            line_of(nb, f["location"])[f["start"]:f["end"]]) for f in secrets}
    assert ("SECRET:AWS Access Key", 1, None, 2, AWS_KEY) in got  # in a cell's source
    assert ("SECRET:Basic Auth Credentials", 2, 0, 2, DB_PASSWORD) in got  # in a stream output
    assert ("SECRET:JSON Web Token", 3, 0, 1, JWT) in got  # in an execute_result's text/plain
    assert ("SECRET:GitHub Token", 4, 0, 2, GITHUB) in got  # in a traceback (colour codes removed)
    assert not [f for f in secrets if f["location"]["cell"] in (0, 5)]  # markdown, an image: nothing
    for f in found:
        assert set(f) == {"file", "location", "entity_type", "start", "end", "score"}
        assert f["file"] == str(notebooks / "leaky.ipynb")
    for f in secrets:
        assert f["score"] == 1.0
        assert {"cell", "output", "line"} <= set(f["location"])
    for value in VALUES:
        assert value not in printed


def test_a_clean_notebook_exits_0(notebooks, capsys):
    code, found, _ = scan_json(capsys, notebooks / "clean.ipynb")
    assert (code, found) == (0, [])


def test_plain_output_names_cell_output_and_line_never_the_value(notebooks):
    out = subprocess.run([sys.executable, "-m", "jupyter", "guard", "scan", str(notebooks / "leaky.ipynb")],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert out.returncode == 1, out.stderr
    assert "cell 1, line 2" in out.stdout and "SECRET:AWS Access Key" in out.stdout
    assert "cell 2, output 0, line 2" in out.stdout and "SECRET:Basic Auth Credentials" in out.stdout
    assert "cell 3, output 0 (text/plain), line 1" in out.stdout
    for value in VALUES:
        assert value not in out.stdout + out.stderr


def test_text_files_private_keys_and_the_entities_option(tmp_path, capsys):
    (tmp_path / "deploy.env").write_text(
        "# settings\nDATABASE_URL=" + CONN + "\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n"
        "-----END RSA PRIVATE KEY-----\nmail ann@example.org\n")
    code, found, printed = scan_json(capsys, tmp_path / "deploy.env")
    assert code == 1
    kinds = {(f["location"]["line"], f["entity_type"]) for f in found}
    assert (2, "SECRET:Basic Auth Credentials") in kinds and (3, "SECRET:Private Key") in kinds
    assert (6, "EMAIL_ADDRESS") in kinds  # PII as before
    assert DB_PASSWORD not in printed
    # --entities SECRET: secrets only; --entities of PII: no secrets; --no-secrets: no secrets
    code, found, _ = scan_json(capsys, tmp_path / "deploy.env", "--entities", "SECRET")
    assert code == 1 and found and all(f["entity_type"].startswith("SECRET:") for f in found)
    code, found, _ = scan_json(capsys, tmp_path / "deploy.env", "--entities", "EMAIL_ADDRESS")
    assert found and {f["entity_type"] for f in found} == {"EMAIL_ADDRESS"}
    code, found, _ = scan_json(capsys, tmp_path / "deploy.env", "--no-secrets")
    assert not [f for f in found if f["entity_type"].startswith("SECRET:")]


def test_a_broken_notebook_is_an_error(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    assert main(["scan", str(tmp_path / "broken.ipynb")]) == 2
    assert "broken.ipynb: not a notebook" in capsys.readouterr().err


@pytest.mark.parametrize("line, expected", [
    (f'key = "{AWS_KEY}"', ["SECRET:AWS Access Key"]),
    (f"token: {JWT}.", ["SECRET:JSON Web Token"]),
    ('password = "correct horse battery"', ["SECRET:Secret Keyword"]),
    ('digest = "3f786850e387550fdab836ed7e6dc881de23001b"', ["SECRET:Hex High Entropy String"]),
    ("sha 3f786850e387550fdab836ed7e6dc881de23001b in a log line", []),  # entropy counts in literals only
    ("postgresql+psycopg://alice:***@db/warehouse", []),  # already masked
    ("engine = connect('warehouse')", []),
    ("hello world, nothing here", []),
])
def test_the_scanner_on_single_lines(line, expected):
    with SecretScanner() as scanner:
        found = scanner.find(line)
    assert [f.entity_type for f in found] == expected
    if found and "JSON Web Token" in expected:
        assert line[found[0].start:found[0].end] == JWT  # widened to the whole token, full stop excluded
