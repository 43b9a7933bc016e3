"""Which folders hold governed data (the file browser's folder badges), from a real catalog."""

from __future__ import annotations

import os

from jupyter_guard.catalog import load_catalog
from jupyter_guard.catalog.folders import governing

CATALOG = """\
datasets:
  - {name: patients, label: restricted, steward: S, locations: [data/patients.csv]}
  - {name: visits, label: internal, steward: S, locations: [data/visits/*.csv]}
  - {name: archive, label: confidential, steward: S, locations: [data/archive/]}
  - {name: scans, label: confidential, steward: S, locations: ["data/*/scan-*.png"]}
  - {name: outside, label: restricted, steward: S, locations: [/srv/elsewhere/x.csv]}
  - {name: clinics, label: public, steward: S, locations: [data/clinics.csv, {table: w.public.clinics}]}
"""


def catalog(tmp_path):
    root = tmp_path / "root"
    (root / "data" / "visits").mkdir(parents=True)
    (root / "data" / "archive").mkdir()
    (root / "data" / "imaging").mkdir()
    (root / "free").mkdir()
    os.symlink(root / "data", root / "alias")
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "d.yaml").write_text(CATALOG)
    return root, load_catalog(cat, str(root))


def test_every_folder_above_a_location_up_to_the_root_holds_it(tmp_path):
    root, cat = catalog(tmp_path)
    real = os.path.realpath(root)
    folders = {os.path.relpath(k, real): [d.name for d in v] for k, v in cat.folders().items()}
    assert folders == {
        ".": ["patients", "archive", "scans", "visits", "clinics"],  # most sensitive first, then by name
        "data": ["patients", "archive", "scans", "visits", "clinics"],
        "data/visits": ["visits"],
        "data/archive": ["archive"],  # governed itself, too (resolve says so first)
    }
    assert cat.folders() is cat.folders()  # built once


def test_governing_a_path_a_folder_and_what_is_hidden(tmp_path):
    root, cat = catalog(tmp_path)
    everything = lambda ds: True  # noqa: E731
    assert governing(cat, "data/patients.csv", everything)[0].name == "patients"
    assert [(d.name, c) for d, c in [governing(cat, p, everything) for p in ("data", "alias", "data/visits", "data/archive")]] == [
        ("patients", True), ("patients", True), ("visits", True), ("archive", False)]
    assert governing(cat, "free", everything) is None
    assert governing(cat, "data/imaging", everything) is None  # a glob below data/*: not claimed for each folder
    no_restricted = lambda ds: ds.label.name != "restricted"  # noqa: E731
    assert governing(cat, "data/patients.csv", no_restricted) is None  # hidden, and nothing else is shown instead
    assert governing(cat, "data", no_restricted)[0].name == "archive"  # the most sensitive one that may be known
