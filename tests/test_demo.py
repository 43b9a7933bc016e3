"""The demo workspace: real files in tmp_path, the real catalog loader and policy, a real kernel
for the notebook, and one real JupyterLab started through `launch` and stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

import jupyter_guard
from jupyter_guard import demo
from jupyter_guard.demo import build_workspace, demo_roles, launch_command

EXPECTED_FILES = {
    ".jupyter-guard-demo",
    "README.md",
    "demo.ipynb",
    "catalog/datasets.yaml",
    "catalog/policy.yaml",
    "data/patients.csv",
    "data/employees.csv",
    "data/visits/2026-01.csv",
    "data/visits/2026-02.csv",
    "data/clinics.csv",
    "data/scratch/notes.txt",
}
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"(?:\(\d{3}\) |\+1 \d{3} |\b\d{3}[-.])\d{3}[-. ]\d{4}\b")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("demo") / "ws", seed=7, rows=200)


def relative_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- files and data ------------------------------------------------------------------------------


def test_workspace_has_every_file(ws):
    assert set(relative_files(ws.root)) == EXPECTED_FILES
    assert {p.relative_to(ws.root).as_posix() for p in ws.files} == EXPECTED_FILES
    assert ws.catalog_dir == ws.root / "catalog" and ws.audit_dir == ws.root / ".audit"
    assert ws.notebook == ws.root / "demo.ipynb" and ws.readme.read_text().startswith("# jupyter_guard demo")
    assert not ws.audit_dir.exists()  # the server creates it


def test_csvs_parse_and_have_the_catalog_columns(ws):
    catalog = yaml.safe_load(ws.datasets_file.read_text())
    expected_columns = {
        "patients": ["patient_id", "name", "email", "phone", "ssn", "date_of_birth", "address", "diagnosis", "notes"],
        "employees": ["employee_id", "name", "email", "phone", "salary", "department", "address", "manager_notes"],
        "visits": ["visit_id", "patient_id", "date", "clinic", "duration_minutes"],
        "clinics": ["clinic_id", "clinic", "city", "state", "opened"],
    }
    assert {d["name"] for d in catalog["datasets"]} == set(expected_columns)
    for spec in catalog["datasets"]:
        files = sorted(p for loc in spec["locations"] for p in ws.root.glob(loc))
        assert files, spec["name"]
        for path in files:
            df = pd.read_csv(path)
            assert list(df.columns) == expected_columns[spec["name"]], path
            assert set(spec.get("columns", {})) <= set(df.columns), path
            assert len(df) > 0 and not df.isna().any().any(), path

    patients = pd.read_csv(ws.root / "data/patients.csv", dtype=str)
    assert len(patients) == 200 and patients["patient_id"].is_unique
    assert patients["ssn"].str.fullmatch(r"\d{3}-\d{2}-\d{4}").all()
    assert patients["email"].str.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)").all()
    assert patients["phone"].str.fullmatch(PHONE.pattern).all()
    assert set(patients["diagnosis"]) <= set(demo.DIAGNOSES)
    employees = pd.read_csv(ws.root / "data/employees.csv")
    assert len(employees) == 50 and employees["salary"].between(52_000, 185_000).all()
    visits = pd.concat(pd.read_csv(p) for p in sorted((ws.root / "data/visits").glob("*.csv")))
    assert len(visits) == 400 and visits["visit_id"].is_unique
    assert set(visits["patient_id"]) <= set(patients["patient_id"])  # visits point at real patients
    assert pd.to_datetime(visits["date"]).between("2026-01-01", "2026-02-28").all()
    # no direct PII in the internal data
    assert not visits.astype(str).apply(lambda c: c.str.contains(SSN.pattern) | c.str.contains("@")).any().any()
    clinics = pd.read_csv(ws.root / "data/clinics.csv")
    assert set(visits["clinic"]) <= set(clinics["clinic"])


def test_same_seed_same_bytes_other_seed_other_bytes(ws, tmp_path):
    again = build_workspace(tmp_path / "again", seed=7, rows=200)
    assert relative_files(again.root) == relative_files(ws.root)
    other = relative_files(build_workspace(tmp_path / "other", seed=8, rows=200).root)
    mine = relative_files(ws.root)
    for name in ("data/patients.csv", "data/employees.csv", "data/visits/2026-01.csv", "data/visits/2026-02.csv"):
        assert other[name] != mine[name], name
    assert other["catalog/policy.yaml"] == mine["catalog/policy.yaml"]


def test_building_does_not_touch_global_faker_state(tmp_path):
    from faker import Faker

    Faker.seed(1234)
    expected = Faker("en_US").name()
    Faker.seed(1234)
    build_workspace(tmp_path / "ws", seed=7, rows=5)
    assert Faker("en_US").name() == expected


def test_rows_controls_the_size(tmp_path):
    small = build_workspace(tmp_path / "small", seed=3, rows=12)
    assert len(pd.read_csv(small.root / "data/patients.csv")) == 12
    assert len(pd.read_csv(small.root / "data/employees.csv")) == 10
    assert len(pd.read_csv(small.root / "data/visits/2026-02.csv")) == 12
    with pytest.raises(ValueError, match="rows"):
        build_workspace(tmp_path / "none", rows=0)


def test_refuses_a_foreign_directory_and_rebuilds_a_demo_one(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(FileExistsError, match="not a jupyter_guard demo workspace"):
        build_workspace(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]

    ws = build_workspace(tmp_path / "ws", seed=7, rows=20)
    (ws.root / "data/patients.csv").write_text("edited\n")
    (ws.root / "mine.ipynb").write_text("{}")
    before = relative_files(build_workspace(tmp_path / "fresh", seed=7, rows=20).root)
    build_workspace(ws.root, seed=7, rows=20)
    after = relative_files(ws.root)
    assert after.pop("mine.ipynb") == b"{}"  # files of the user are kept
    assert after == before


def test_free_text_notes_really_hold_pii(ws):
    patients = pd.read_csv(ws.root / "data/patients.csv", dtype=str)
    notes = patients["notes"]
    share = {
        "ssn": notes.str.contains(SSN.pattern).mean(),
        "email": notes.str.contains(EMAIL.pattern).mean(),
        "phone": notes.str.contains(PHONE.pattern).mean(),
        "own name": pd.Series([n in t for n, t in zip(patients["name"], notes)]).mean(),
    }
    assert share["ssn"] >= 0.15 and share["email"] >= 0.15 and share["phone"] >= 0.2, share
    assert share["own name"] >= 0.4, share
    any_pii = notes.str.contains(f"{SSN.pattern}|{EMAIL.pattern}|{PHONE.pattern}") | pd.Series(
        [n.split()[0] in t for n, t in zip(patients["name"], notes)]
    )
    assert 0.75 <= any_pii.mean() < 1.0, any_pii.mean()  # mostly PII, with some clean notes too
    # the PII in a note is that row's own (as in a real registry), not random noise
    for _, row in patients.iterrows():
        for found in SSN.findall(row["notes"]):
            assert found == row["ssn"]
        for found in EMAIL.findall(row["notes"]):
            assert found == row["email"]

    employees = pd.read_csv(ws.root / "data/employees.csv", dtype=str)
    mentions = [n in t or e in t for n, e, t in zip(employees["name"], employees["email"], employees["manager_notes"])]
    assert sum(mentions) / len(mentions) >= 0.4
    assert "call back" in (ws.root / "data/scratch/notes.txt").read_text()


# -- catalog and policy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gov(ws):
    from jupyter_guard.governor import load_governance

    return load_governance(ws.catalog_dir, ws.root)


def test_catalog_validates_and_resolves(gov, ws):
    assert not gov.policy.warnings
    assert [label.name for label in gov.catalog.labels] == ["public", "internal", "confidential", "restricted"]
    expect = {
        "data/patients.csv": ("patients", "restricted"),
        "data/employees.csv": ("employees", "confidential"),
        "data/visits/2026-01.csv": ("visits", "internal"),
        "data/visits/2026-02.csv": ("visits", "internal"),
        "data/visits/2026-03.csv": ("visits", "internal"),  # next month's file, governed on arrival
        "data/clinics.csv": ("clinics", "public"),
    }
    for target, (name, label) in expect.items():
        res = gov.catalog.resolve(target)
        assert res.dataset is not None, target
        assert (res.dataset.name, res.label.name) == (name, label), target
    assert gov.catalog.resolve(str(ws.root / "data/patients.csv")).dataset.name == "patients"
    assert gov.catalog.resolve("data/scratch/notes.txt").dataset is None
    patients = gov.catalog.datasets["patients"]
    assert {c.column: (c.entity, c.rule) for c in patients.columns}["notes"] == ("FREE_TEXT", "scan")
    assert patients.purposes == ("treatment-research", "quality-audit")
    assert str(patients.steward) == "Dana Steward <dana.steward@example.org>"


def decide(gov, target, action="read", *, user="someone", purpose=None, justification=None, extra_roles=None):
    who = gov.policy.principal(user, (), extra_roles)
    return gov.policy.decide(
        who, gov.catalog.resolve(target).dataset, action, purpose=purpose, justification=justification
    )


def test_policy_shows_every_effect(gov):
    assert decide(gov, "data/clinics.csv").effect == "allow"
    assert decide(gov, "data/clinics.csv", "export").effect == "allow"
    assert decide(gov, "data/visits/2026-01.csv").effect == "allow"
    assert decide(gov, "data/visits/2026-02.csv", "download").effect == "allow"
    assert decide(gov, "data/scratch/notes.txt").effect == "allow"

    emp = decide(gov, "data/employees.csv")
    assert (emp.effect, emp.permitted) == ("redact", True)
    assert {c["name"]: c["rule"] for c in emp.columns}["salary"] == "drop"
    export = decide(gov, "data/employees.csv", "export")
    assert (export.effect, export.permitted) == ("justify", False)
    assert "written reason" in " ".join(export.reasons)
    justified = decide(gov, "data/employees.csv", "export", justification="Payroll audit requested by finance")
    assert (justified.effect, justified.permitted) == ("justify", True)

    no_purpose = decide(gov, "data/patients.csv")
    assert (no_purpose.effect, no_purpose.permitted) == ("deny", False)
    assert "purpose" in no_purpose.message() and "dana.steward@example.org" in no_purpose.message()
    research = decide(gov, "data/patients.csv", purpose="treatment-research")
    assert (research.effect, research.permitted, research.rule) == ("redact", True, "restricted-read-for-purpose")
    assert {c["name"] for c in research.columns} >= {"name", "ssn", "notes"}
    assert decide(gov, "data/patients.csv", purpose="marketing").effect == "deny"
    export = decide(gov, "data/patients.csv", "export", purpose="treatment-research")
    assert export.effect == "deny" and "may not leave the workspace" in export.message()
    assert decide(gov, "data/patients.csv", "download").effect == "deny"
    assert decide(gov, "data/patients.csv", "credential", purpose="treatment-research").effect == "deny"

    for target in ("data/patients.csv", "data/employees.csv", "data/visits/2026-01.csv", "data/clinics.csv"):
        assert decide(gov, target, "discover").effect == "allow", target


def test_demo_user_is_a_researcher_and_can_be_made_a_steward(gov):
    me = gov.policy.principal("me", (), demo_roles("me"))
    assert me.roles == {"researcher"}
    steward_roles = {"steward": {"users": ["me"]}}
    assert "steward" in gov.policy.principal("me", (), steward_roles).roles
    raw = decide(gov, "data/patients.csv", user="me", extra_roles=steward_roles)
    assert (raw.effect, raw.rule) == ("allow", "stewards-full-access")
    assert decide(gov, "data/patients.csv", "export", user="me", extra_roles=steward_roles).effect == "allow"
    # membership of the data-stewards group also makes a steward
    who = gov.policy.principal("dana", ["data-stewards"])
    assert gov.policy.decide(who, gov.catalog.datasets["employees"], "export").effect == "allow"


# -- notebook ------------------------------------------------------------------------------------


def test_notebook_is_valid_and_runs_with_plain_pandas(ws):
    from nbclient import NotebookClient

    nb = nbformat.read(ws.notebook, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    sources = "\n".join(c.source for c in code)
    for path in ("data/patients.csv", "data/employees.csv", "data/clinics.csv", "data/visits/2026-01.csv",
                 "data/visits/2026-02.csv", "data/scratch/notes.txt"):
        assert path in sources, path
    magic = [c for c in code if c.source.splitlines()[-1] == "%guard purpose treatment-research"]
    assert magic, "the notebook shows how to declare a purpose"

    # the guard's own behaviour is tested through a real server in tests/kernel; here the cells
    # run with plain pandas, without the %guard magic (no guard is loaded in this kernel)
    nb.cells = [c for c in nb.cells if c not in magic]
    code = [c for c in code if c not in magic]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ws.root)}}).execute()
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in code)
    last = code[-1].outputs[0]
    assert last.output_type == "stream" and "call back" in last.text


# -- launching JupyterLab ------------------------------------------------------------------------


def test_launch_command(ws, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cmd = launch_command(ws.root, port=8899, open_browser=False, extra_args=["--debug"])
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={ws.root}" in cmd
    assert f"--GuardApp.catalog_dir={ws.root / 'catalog'}" in cmd
    assert f"--GuardApp.audit_dir={ws.root / '.audit'}" in cmd
    assert "--GuardApp.principal_source=os" in cmd
    assert {"--allow-root", "--no-browser", "--port=8899"} <= set(cmd)
    assert cmd[-1] == "--debug"
    roles = [a for a in cmd if a.startswith("--GuardApp.roles=")]
    assert len(roles) == 1 and json.loads(roles[0].split("=", 1)[1]) == {"researcher": {"users": [demo.getpass.getuser()]}}

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = launch_command(ws.root)
    assert "--allow-root" not in cmd and "--no-browser" not in cmd and not any(a.startswith("--port") for a in cmd)


def test_launch_refuses_a_directory_without_catalog(tmp_path):
    with pytest.raises(FileNotFoundError, match="catalog"):
        demo.launch(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:  # close the response it holds
            raise AssertionError(f"GET {url} -> {e.code}: {e.read()[:500]!r}") from None


def test_launch_serves_the_workspace_and_stops_on_ctrl_c(tmp_path):
    """`launch` in its own process (as `jupyter guard demo` runs it): wait for the server,
    check that jupyter_guard governs the workspace, press Ctrl-C, expect a clean exit."""
    ws = build_workspace(tmp_path / "ws", seed=7, rows=20)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    package_parent = str(Path(jupyter_guard.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")  # keep server info files out of the home
    script = (
        "import sys\n"
        "from jupyter_guard.demo import launch\n"
        f"sys.exit(launch({str(ws.root)!r}, port={port}, open_browser=False,"
        f" extra_args=['--IdentityProvider.token={token}', '--ServerApp.ip=127.0.0.1']))\n"
    )
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the demo server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                status = get_json(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the demo server did not answer in 120 s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
        assert "started" in status

        try:
            guard = get_json(f"{base}/jupyter-guard/api/status", token)
        except AssertionError as e:
            pytest.fail(f"jupyter_guard is not serving ({e}); server log:\n{log_path.read_text()[-4000:]}")
        assert guard["catalog"]["datasets"] == 4, guard
        assert guard["catalog"]["error"] is None
        assert guard["user"]["roles"] == ["researcher"] and guard["user"]["steward"] is False
        assert (ws.root / ".audit").is_dir()  # GuardApp.audit_dir came from launch
        contents = get_json(f"{base}/api/contents/data", token)
        assert {c["name"] for c in contents["content"]} >= {"patients.csv", "visits", "scratch"}

        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does to `jupyter guard demo`
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:  # SIGTERM: the launcher stops its server too (it runs in its own session)
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get_json(f"{base}/api/status", token)  # the server is gone with the launcher
    log = log_path.read_text()
    assert "stopping the server" in log and "received signal" in log  # a clean SIGTERM shutdown
