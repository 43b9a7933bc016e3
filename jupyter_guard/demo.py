"""A throw-away demo workspace for ``jupyter guard demo``: fake data, a catalog, a notebook.

`build_workspace` writes synthetic data sets with every sensitivity label (made with Faker,
seeded, so the same seed always gives the same bytes), a catalog and policy that label them,
a sample notebook and a README. `launch` starts JupyterLab on it with jupyter_guard
configured, as a researcher. Nothing here is real data: names, SSNs, phone numbers and
addresses are invented, and e-mail addresses use the reserved ``example.*`` domains.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

MARKER = ".jupyter-guard-demo"
PURPOSE = "treatment-research"

DIAGNOSES = (
    "Type 2 diabetes",
    "Hypertension",
    "Asthma",
    "Migraine",
    "Chronic kidney disease",
    "Major depressive disorder",
    "Osteoarthritis",
    "Hyperlipidemia",
    "COPD",
    "Atrial fibrillation",
)
DEPARTMENTS = (
    "Cardiology", "Nursing", "Pharmacy", "Radiology", "Billing", "IT", "Research", "Front Desk",
)
#: real US area codes, so that phone numbers look (and validate) like real ones
AREA_CODES = ("212", "312", "415", "503", "512", "617", "206", "305", "404", "720", "919", "602")
CLINICS = (
    # clinic, city, state, opened
    ("Harbor Street Clinic", "Boston", "MA", 1998),
    ("Riverside Family Health", "Portland", "OR", 2004),
    ("Lakeview Medical Center", "Chicago", "IL", 1987),
    ("Sunset Primary Care", "San Francisco", "CA", 2011),
    ("Pine Hill Health", "Austin", "TX", 2016),
    ("Bayfront Community Clinic", "Miami", "FL", 2008),
)
VISIT_MONTHS = ((2026, 1, 31), (2026, 2, 28))
DURATIONS = (15, 20, 30, 30, 45, 60)

PATIENT_NOTES = (
    "Called {name} at {phone} about refill; SSN {ssn} on file.",
    "Patient {first} prefers e-mail contact: {email}.",
    "{name} (DOB {dob}) reported improved symptoms; follow-up in 6 weeks.",
    "Insurance verification pending for SSN {ssn}; reach {first} at {phone}.",
    "Left voicemail for {name} at {phone}; emergency contact is {other}.",
    "Sent lab results to {email} at the request of {name}.",
    "Home visit for {name} scheduled at {street}, {city}.",
    "Identity of {name} confirmed with SSN {ssn} and date of birth {dob}.",
    "No change since last visit. Continue current medication.",
    "Reviewed imaging with {name}; next appointment confirmed by e-mail to {email}.",
    "Pharmacy asked to call {first} {last} back on {phone} before 5 pm.",
    "Blood pressure stable; patient declined flu shot.",
)
MANAGER_NOTES = (
    "Discussed promotion path with {name}; follow up at {email}.",
    "{first} covered the {department} on-call rotation for {other}.",
    "Reference check for {other} requested by {name}; reply to {email}.",
    "Annual review done. {name} exceeds expectations on patient feedback.",
    "{name} asked to move to part-time; call {phone} to confirm start date.",
    "Expense report of {name} returned for missing receipts.",
)


@dataclass(frozen=True)
class Workspace:
    """Where `build_workspace` put things (all absolute)."""

    root: Path
    data_dir: Path
    catalog_dir: Path
    audit_dir: Path
    notebook: Path
    readme: Path
    files: tuple[Path, ...]  # every file written, in writing order

    @property
    def datasets_file(self) -> Path:
        return self.catalog_dir / "datasets.yaml"

    @property
    def policy_file(self) -> Path:
        return self.catalog_dir / "policy.yaml"


def build_workspace(directory: str | os.PathLike, *, seed: int = 7, rows: int = 200) -> Workspace:
    """Write a demo workspace into `directory` (created if missing) and return its paths.

    The directory must be empty, missing, or an earlier demo workspace (whose generated files
    are then written again; ``.audit/`` and files you added are kept). `rows` is the number of
    patients; visits per month are as many, employees a quarter of that (at least 10).
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    from faker import Faker

    root = Path(directory).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise FileExistsError(
            f"{root} is not empty and is not a jupyter_guard demo workspace; "
            "choose a new or empty directory (the demo writes data, catalog and notebook files)"
        )
    fake = Faker("en_US")
    # an instance-local random: same seed -> same bytes, and no effect on other Faker users
    fake.seed_instance(seed)

    written: list[Path] = []

    def write(rel: str, text: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        written.append(path)
        return path

    def write_csv(rel: str, header: Sequence[str], records: list[dict]) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(header), lineterminator="\n")
            w.writeheader()
            w.writerows(records)
        written.append(path)
        return path

    root.mkdir(parents=True, exist_ok=True)
    write(MARKER, "A jupyter_guard demo workspace (jupyter guard demo). Safe to delete.\n")

    patients = _patients(fake, rows)
    write_csv("data/patients.csv", PATIENT_COLUMNS, patients)
    write_csv("data/employees.csv", EMPLOYEE_COLUMNS, _employees(fake, max(10, rows // 4)))
    for year, month, days in VISIT_MONTHS:
        visits = _visits(fake, patients, year, month, days, rows)
        write_csv(f"data/visits/{year}-{month:02d}.csv", VISIT_COLUMNS, visits)
    write_csv(
        "data/clinics.csv",
        CLINIC_COLUMNS,
        [dict(zip(CLINIC_COLUMNS, (f"C{i:02d}", *c))) for i, c in enumerate(CLINICS, 1)],
    )
    write("data/scratch/notes.txt", _scratch_notes(patients[0]))
    write("catalog/datasets.yaml", DATASETS_YAML)
    write("catalog/policy.yaml", POLICY_YAML)
    notebook = write("demo.ipynb", _notebook())
    readme = write("README.md", README)
    return Workspace(
        root=root,
        data_dir=root / "data",
        catalog_dir=root / "catalog",
        audit_dir=root / ".audit",
        notebook=notebook,
        readme=readme,
        files=tuple(written),
    )


# -- synthetic data ----------------------------------------------------------------------------

PATIENT_COLUMNS = (
    "patient_id", "name", "email", "phone", "ssn", "date_of_birth", "address", "diagnosis", "notes",
)
EMPLOYEE_COLUMNS = (
    "employee_id", "name", "email", "phone", "salary", "department", "address", "manager_notes",
)
VISIT_COLUMNS = ("visit_id", "patient_id", "date", "clinic", "duration_minutes")
CLINIC_COLUMNS = ("clinic_id", "clinic", "city", "state", "opened")


def _phone(fake) -> str:
    area = fake.random_element(AREA_CODES)
    exchange = f"{fake.random_int(2, 9)}{fake.random_int(0, 9)}{fake.random_int(0, 9)}"
    if exchange[1:] == "11" or exchange == "555":  # N11 codes and 555 are not subscriber exchanges
        exchange = exchange[0] + "23"
    line = f"{fake.random_int(0, 9999):04d}"
    style = fake.random_int(0, 3)
    return (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"+1 {area} {exchange} {line}",
    )[style]


def _email_local(first: str, last: str) -> str:
    keep = lambda s: "".join(ch for ch in s.lower() if ch.isalnum())  # noqa: E731
    return f"{keep(first)}.{keep(last)}"


def _person(fake) -> tuple[str, str, str]:
    first, last = fake.first_name(), fake.last_name()
    return first, last, f"{first} {last}"


def _address(fake) -> tuple[str, str, str]:
    street, city = fake.street_address(), fake.city()
    state, zipcode = fake.state_abbr(include_territories=False), fake.zipcode()
    return f"{street}, {city}, {state} {zipcode}", street, city


def _patients(fake, n: int) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        first, last, name = _person(fake)
        domain = fake.random_element(("example.com", "example.org", "example.net"))
        email = f"{_email_local(first, last)}{fake.random_int(1, 99)}@{domain}"
        phone, ssn = _phone(fake), fake.ssn()
        dob = fake.date_between_dates(date(1938, 1, 1), date(2007, 12, 31)).isoformat()
        address, street, city = _address(fake)
        other = fake.name()
        note = fake.random_element(PATIENT_NOTES).format(
            name=name, first=first, last=last, email=email, phone=phone, ssn=ssn, dob=dob,
            street=street, city=city, other=other,
        )
        out.append(
            {
                "patient_id": f"P{i:05d}",
                "name": name,
                "email": email,
                "phone": phone,
                "ssn": ssn,
                "date_of_birth": dob,
                "address": address,
                "diagnosis": fake.random_element(DIAGNOSES),
                "notes": note,
            }
        )
    return out


def _employees(fake, n: int) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        first, last, name = _person(fake)
        email = f"{_email_local(first, last)}@staff.example.org"
        phone = _phone(fake)
        department = fake.random_element(DEPARTMENTS)
        address, _, _ = _address(fake)
        note = fake.random_element(MANAGER_NOTES).format(
            name=name, first=first, email=email, phone=phone, department=department,
            other=fake.name(),
        )
        out.append(
            {
                "employee_id": f"E{i:04d}",
                "name": name,
                "email": email,
                "phone": phone,
                "salary": fake.random_int(52_000, 185_000, step=500),
                "department": department,
                "address": address,
                "manager_notes": note,
            }
        )
    return out


def _visits(fake, patients: list[dict], year: int, month: int, days: int, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        rows.append(
            {
                "patient_id": fake.random_element(patients)["patient_id"],
                "date": date(year, month, fake.random_int(1, days)).isoformat(),
                "clinic": fake.random_element(CLINICS)[0],
                "duration_minutes": fake.random_element(DURATIONS),
            }
        )
    rows.sort(key=lambda r: (r["date"], r["patient_id"]))
    return [{"visit_id": f"V{year}{month:02d}-{i:04d}", **r} for i, r in enumerate(rows, 1)]


def _scratch_notes(patient: dict) -> str:
    return (
        "Scratch notes (not in the catalog, so jupyter_guard neither governs nor records them)\n"
        "\n"
        "- rerun the visit counts per clinic for the February board report\n"
        f"- call back {patient['name']} on {patient['phone']}"
        " (copied from the registry, delete me!)\n"
        "- ask the steward whether the employees extract may go to the auditors\n"
    )


# -- catalog and policy ------------------------------------------------------------------------

DATASETS_YAML = """\
# The data catalog of the demo workspace: what each data set is, how sensitive it is, who
# looks after it, where it lives and how its columns are redacted.
#
# Paths are relative to the Jupyter server's root (this workspace). A location may be a file,
# a glob (data/visits/*.csv), or a directory ending with "/" (everything below it).
# Files under data/ that no dataset lists (data/scratch/notes.txt) are not governed.

# Sensitivity labels, least sensitive first: the policy compares them by this order.
labels:
  - name: public
    description: May be published.
  - name: internal
    description: For staff; no direct personal data.
  - name: confidential
    description: Personal data of staff; redacted on read, exports need a written reason.
  - name: restricted
    description: Health and identity data of patients; purpose-bound, never exported.

datasets:
  - name: patients
    description: Synthetic patient registry extract (names, contacts, SSNs, diagnoses, notes)
    label: restricted
    owner: Clinical Research Unit
    steward: Dana Steward <dana.steward@example.org>
    locations:
      - data/patients.csv
      # other kinds of location look like this:
      # - uri: s3://clinical-bucket/registry/*.parquet
      # - table: warehouse.clinical.patients
    # column -> the Presidio entity it holds and what a redacted read does to it:
    #   mask (keep the shape, hide the characters), replace (<PERSON>), hash (salted, so
    #   joins still work), encrypt (reversible by the steward), scan (find PII inside free
    #   text with Presidio), drop (remove the column), keep (leave as is)
    columns:
      name: {entity: PERSON, rule: replace}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      phone: {entity: PHONE_NUMBER, rule: mask}
      ssn: {entity: US_SSN, rule: mask}
      date_of_birth: {entity: DATE_TIME, rule: mask}
      address: {entity: LOCATION, rule: replace}
      notes: {entity: FREE_TEXT, rule: scan}
    # reads must declare one of these purposes (%guard purpose treatment-research)
    purposes: [treatment-research, quality-audit]

  - name: employees
    description: Synthetic staff directory with salaries and manager notes
    label: confidential
    owner: Human Resources
    steward: Priya Patel <priya.patel@example.org>
    locations:
      - data/employees.csv
    columns:
      name: {entity: PERSON, rule: replace}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      phone: {entity: PHONE_NUMBER, rule: mask}
      salary: {entity: SALARY, rule: drop}   # not a Presidio entity: dropped, never detected
      address: {entity: LOCATION, rule: replace}
      manager_notes: {entity: FREE_TEXT, rule: scan}

  - name: visits
    description: Clinic visits per month (pseudonymous patient ids, no direct personal data)
    label: internal
    owner: Clinical Operations
    steward: Sam Okafor <sam.okafor@example.org>
    locations:
      - data/visits/*.csv         # every monthly file, including next month's

  - name: clinics
    description: Clinic names and cities
    label: public
    owner: Clinical Operations
    steward: Sam Okafor <sam.okafor@example.org>
    locations:
      - data/clinics.csv
"""

POLICY_YAML = """\
# The policy of the demo workspace: who may do what with data of each label.
#
# How it is read: rules are tried top to bottom and the FIRST rule whose conditions all hold
# decides (like a firewall). A condition left out matches everything. Conditions: users,
# groups, roles, datasets, labels, min_label, max_label, actions, purposes. Actions:
#   read       a notebook reads the data (pd.read_csv, open, ...)
#   export     a notebook holding the data is exported (nbconvert: HTML, PDF, ...)
#   download   the file is downloaded from JupyterLab
#   credential a notebook asks for the credentials of the data source
#   discover   the dataset is listed in the catalog panel
# Effects:
#   allow    untouched data
#   redact   data with the catalog's column rules applied (masked, hashed, replaced, scanned)
#   justify  allowed only with a written reason, which the audit log keeps for the steward
#   deny     refused, with the message below and whom to ask (the dataset's steward)
# A permitting rule on a dataset that lists `purposes` also needs one of them declared
# (%guard purpose NAME) unless the rule says `check_purpose: false`; `require_purpose: true`
# asks for a purpose even where the dataset lists none.
#
# Every decision on labelled data lands in the audit log (.audit/ in this workspace), with
# the user, the notebook cell and the rule that decided.

roles:
  # Stewards see data raw and read the audit log. Nobody is a steward in the demo until you
  # make yourself one: --GuardApp.roles='{"steward": {"users": ["<you>"]}}' (see README.md).
  steward: {users: [], groups: [data-stewards]}
  # Everyone else is a researcher.
  researcher: {users: ["*"]}

defaults:
  unlabeled: allow   # data that no dataset governs (data/scratch/) is read freely, not recorded
  no_rule: deny      # labelled data that no rule below covers: fail closed

rules:
  - name: stewards-full-access
    description: Stewards read and export governed data raw, without declaring a purpose.
    roles: [steward]
    effect: allow
    check_purpose: false

  - name: everyone-discovers
    description: Every dataset is listed in the catalog panel, so people know whom to ask.
    actions: [discover]
    effect: allow
    check_purpose: false

  # public (data/clinics.csv): no restriction at all
  - name: public-open
    labels: [public]
    effect: allow

  # internal (data/visits/*.csv): staff data without direct personal data; read and export
  - name: internal-open
    labels: [internal]
    effect: allow

  # confidential (data/employees.csv): read redacted ...
  - name: confidential-read-redacted
    labels: [confidential]
    actions: [read, credential]
    effect: redact

  # ... and export only with a written reason
  - name: confidential-export-justified
    labels: [confidential]
    actions: [export, download]
    effect: justify
    message: Exports of staff data need a written reason that the HR steward reviews.

  # restricted (data/patients.csv): researchers read it redacted, for a declared purpose
  - name: restricted-read-for-purpose
    roles: [researcher]
    labels: [restricted]
    actions: [read]
    effect: redact
    require_purpose: true
    message: Patient data is redacted and needs a declared purpose.

  # ... and it never leaves the workspace
  - name: restricted-no-export
    labels: [restricted]
    actions: [export, download]
    effect: deny
    message: Patient data may not leave the workspace; ask the steward for an approved extract.

  # Anything else on labelled data (e.g. credentials for restricted data) matches no rule and
  # gets defaults.no_rule: deny.
"""


# -- notebook and README -----------------------------------------------------------------------


def _notebook() -> str:
    import nbformat
    from nbformat import v4

    md, code = v4.new_markdown_cell, v4.new_code_cell
    cells = [
        md(
            "# jupyter_guard demo\n"
            "\n"
            "jupyter_guard puts data governance where you work. Every data set in this workspace "
            "has a **sensitivity label** in `catalog/datasets.yaml`; `catalog/policy.yaml` says "
            "what each label allows. When a cell reads governed data, jupyter_guard decides "
            "*allow*, *redact* (PII masked by the catalog's column rules and by Presidio in free "
            "text), *justify* (export with a written reason) or *deny* (with whom to ask), and "
            "writes a tamper-evident audit record naming you, the notebook and the cell.\n"
            "\n"
            "| file | label | reading it | exporting it |\n"
            "|---|---|---|---|\n"
            "| `data/clinics.csv` | public | allowed | allowed |\n"
            "| `data/visits/*.csv` | internal | allowed | allowed |\n"
            "| `data/employees.csv` | confidential | redacted | needs a written reason |\n"
            "| `data/patients.csv` | restricted | redacted, needs a purpose | denied |\n"
            "| `data/scratch/notes.txt` | none | allowed, not recorded | allowed |\n"
            "\n"
            "All data here is fake (made with Faker)."
        ),
        code("import pandas as pd"),
        md("## Public: clinics\nNo restriction: read, export and download freely."),
        code('clinics = pd.read_csv("data/clinics.csv")\nclinics'),
        md(
            "## Internal: visits\n"
            "One dataset, `visits`, governs every file matching `data/visits/*.csv`, so next "
            "month's file is governed the day it arrives."
        ),
        code(
            'visits = pd.concat(\n'
            '    [\n'
            '        pd.read_csv("data/visits/2026-01.csv"),\n'
            '        pd.read_csv("data/visits/2026-02.csv"),\n'
            '    ],\n'
            "    ignore_index=True,\n"
            ")\n"
            'visits.merge(clinics, on="clinic").groupby("city")["visit_id"].count()'
        ),
        md(
            "## Confidential: employees\n"
            "Read redacted: names replaced, e-mails hashed, phones masked, salaries dropped, "
            "names and e-mails inside `manager_notes` found and redacted. The policy asks a "
            "written reason for exports (export gates arrive in the next release)."
        ),
        code('employees = pd.read_csv("data/employees.csv")\nemployees.head()'),
        md(
            "## Restricted: patients\n"
            "Researchers read patient data redacted and only for a declared purpose; without "
            "one the read is denied with a message naming the steward. Declare it with the "
            "`%guard` magic, then read."
        ),
        code(
            "# Without a declared purpose this read is denied, naming the steward to ask:\n"
            'pd.read_csv("data/patients.csv")'
        ),
        code(
            "# Declare why you read restricted data; it is stamped on every audit record:\n"
            f"%guard purpose {PURPOSE}"
        ),
        code(
            'patients = pd.read_csv("data/patients.csv")\n'
            'patients[["name", "ssn", "diagnosis", "notes"]].head()'
        ),
        md(
            "## Ungoverned: scratch notes\n"
            "No dataset lists `data/scratch/`, so reads are allowed and not recorded, even "
            "though this file holds a phone number copied from the registry. Catalog it to "
            "govern it."
        ),
        code('with open("data/scratch/notes.txt", encoding="utf-8") as f:\n    print(f.read())'),
        md(
            "## Things to try\n"
            "- See what was recorded: `jupyter guard audit query --audit-dir .audit` in a "
            "terminal (one `decision` per governed read, one `cell_execution` per cell that "
            "touched governed data).\n"
            "- Become a steward (see `README.md`) and read `data/patients.csv` again: raw data, "
            "and the audit log shows every read above.\n"
            "- Change a label in `catalog/datasets.yaml`: the server reloads the catalog within "
            "seconds."
        ),
    ]
    for i, cell in enumerate(cells, 1):
        cell["id"] = f"demo-{i:02d}"  # fixed ids: the same seed gives the same bytes
    nb = v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {
                "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python",
            },
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


README = """\
# jupyter_guard demo workspace

Fake data (Faker) with every sensitivity label; `catalog/datasets.yaml` labels it and
`catalog/policy.yaml` (read it first: it is commented) says what each label allows.

| path | label | read | export / download |
|---|---|---|---|
| `data/clinics.csv` | public | allowed | allowed |
| `data/visits/*.csv` (2026-01, 2026-02) | internal | allowed | allowed |
| `data/employees.csv` | confidential | redacted | needs a written reason |
| `data/patients.csv` | restricted | redacted, for a declared purpose | denied |
| `data/scratch/notes.txt` | none (not in the catalog) | allowed, not recorded | allowed |

Try: run `demo.ipynb` (declare a purpose with `%guard purpose treatment-research`), export
it as HTML, edit a label and watch the catalog reload. The audit log is in `.audit/`.
You start as a *researcher*. To be a *steward* (raw data, the audit log), start the server
from here with your login name (`whoami`) as steward:

    jupyter lab --ServerApp.root_dir=. --GuardApp.catalog_dir=catalog --GuardApp.audit_dir=.audit \\
        --GuardApp.principal_source=os --GuardApp.roles='{"steward": {"users": ["<you>"]}}'

(or pass that last option to `jupyter guard demo`). Delete this directory when done.
"""


# -- running JupyterLab ------------------------------------------------------------------------


def demo_roles(user: str) -> dict[str, dict[str, list[str]]]:
    """GuardApp.roles for the demo: `user` is a researcher and nothing more (not a steward)."""
    return {"researcher": {"users": [user]}}


def launch_command(
    directory: str | os.PathLike,
    *,
    port: int | None = None,
    open_browser: bool = True,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The `jupyter lab` command line that `launch` runs (cwd: the workspace)."""
    root = Path(directory).expanduser().resolve()
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={root}",
        # enabled explicitly: the demo also works from a source checkout that is not installed
        "--ServerApp.jpserver_extensions={'jupyter_guard': True}",
        f"--GuardApp.catalog_dir={root / 'catalog'}",
        f"--GuardApp.audit_dir={root / '.audit'}",
        "--GuardApp.principal_source=os",
        f"--GuardApp.roles={json.dumps(demo_roles(getpass.getuser()))}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    if not open_browser:
        cmd.append("--no-browser")
    if port is not None:
        cmd.append(f"--port={int(port)}")
    cmd.extend(extra_args)
    return cmd


class _Stop(Exception):
    """SIGTERM / SIGHUP of the launcher: stop the server like Ctrl-C does."""


def launch(
    directory: str | os.PathLike,
    *,
    port: int | None = None,
    open_browser: bool = True,
    extra_args: Sequence[str] = (),
    stop_timeout: float = 30.0,
) -> int:
    """Run JupyterLab on a demo workspace until it exits or Ctrl-C; return its exit code.

    The server runs in its own session, so Ctrl-C reaches only this launcher, which then
    stops the server with SIGTERM: jupyter_server's clean shutdown (kernels stopped, the
    audit log drained), without its "Shutdown this Jupyter server (y/[n])?" prompt. A second
    Ctrl-C, or `stop_timeout` seconds without exiting, kills it.
    """
    root = Path(directory).expanduser().resolve()
    if not (root / "catalog").is_dir():
        raise FileNotFoundError(
            f"{root} has no catalog/ directory: build it with build_workspace first"
        )
    try:  # jupyter_server only logs an extension that fails to import, and serves ungoverned
        import jupyter_guard.server.app  # noqa: F401
    except Exception as e:
        raise RuntimeError(
            f"jupyter_guard's server extension cannot be imported ({e!r}), so the demo would run "
            "without governance; reinstall jupyter-guard"
        ) from e
    cmd = launch_command(root, port=port, open_browser=open_browser, extra_args=extra_args)
    print(
        f"jupyter_guard demo in {root}: you are {getpass.getuser()!r}, a researcher "
        "(README.md there says how to become a steward). Ctrl-C stops the server.",
        file=sys.stderr,
    )
    proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, start_new_session=True)
    previous = _forward_stop_signals()
    try:
        return _exit_code(proc.wait())
    except (KeyboardInterrupt, _Stop):
        print("\njupyter_guard demo: stopping the server (Ctrl-C again to force)", file=sys.stderr)
        try:
            proc.terminate()
            return _exit_code(proc.wait(timeout=stop_timeout))
        except (KeyboardInterrupt, _Stop, subprocess.TimeoutExpired):
            proc.kill()
            return _exit_code(proc.wait())
    finally:
        _restore_signals(previous)
        if proc.poll() is None:  # an unexpected error in this process: never leave it running
            proc.kill()
            proc.wait()


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128 + N, as shells report it


def _forward_stop_signals() -> dict:
    """In the main thread, turn SIGTERM/SIGHUP into _Stop so the server is stopped too."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum, frame):
        raise _Stop(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, stop)
    return previous


def _restore_signals(previous: Mapping) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
