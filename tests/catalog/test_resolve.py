"""Resolving read targets: spelling tricks never change which dataset governs a file."""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_guard.catalog import load_catalog

CATALOG = """\
datasets:
  - name: patients
    label: restricted
    steward: S
    locations: [data/patients.csv]
  - name: visits
    label: internal
    steward: S
    locations: [data/visits/*.csv]
  - name: archive
    label: confidential
    steward: S
    locations: [data/archive/]
  - name: deep
    label: public
    steward: S
    locations: ["/srv/lake/**/part-*.parquet"]
  - name: s3
    label: confidential
    steward: S
    locations: [{uri: "s3://Bucket/prefix/*"}]
  - name: hr
    label: restricted
    steward: S
    locations: [{table: warehouse.hr.*}, {table: warehouse.public.staff}]
"""


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "root"
    (root / "data" / "visits").mkdir(parents=True)
    (root / "data" / "archive" / "2020").mkdir(parents=True)
    (root / "data" / "patients.csv").write_text("id\n1\n")
    (root / "data" / "visits" / "jan.csv").write_text("id\n1\n")
    (root / "notes").mkdir()
    # a symlink to a governed file, and a symlinked directory
    os.symlink(root / "data" / "patients.csv", root / "notes" / "innocent.csv")
    os.symlink(root / "data", root / "alias")
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "d.yaml").write_text(CATALOG)
    return root, load_catalog(cat, str(root))


TRICKS = [
    "data/patients.csv",
    "./data/patients.csv",
    "data//patients.csv",
    "data/./visits/../patients.csv",
    "notes/../data/patients.csv",
    "notes/innocent.csv",  # symlink to the governed file
    "alias/patients.csv",  # through a symlinked directory
]


@pytest.mark.parametrize("spelling", TRICKS)
def test_spellings_of_a_governed_file_reach_the_same_dataset(world, spelling):
    root, catalog = world
    for target in (spelling, str(root / spelling), pathlib.Path(root / spelling), "file://" + str(root / spelling)):
        res = catalog.resolve(target)
        assert res.dataset is not None and res.dataset.name == "patients", target
        assert res.target == str(root / "data" / "patients.csv")


def test_globs_directories_uris_and_tables(world):
    root, catalog = world
    assert catalog.resolve("data/visits/jan.csv").dataset.name == "visits"
    assert catalog.resolve("data/visits/sub/jan.csv").dataset is None  # '*' stays in one directory
    assert catalog.resolve("data/archive/2020/x.csv").dataset.name == "archive"
    assert catalog.resolve("data/archive").dataset.name == "archive"  # the directory itself
    assert catalog.resolve("data/archive/2020").dataset.name == "archive"
    assert catalog.resolve("data/visits").dataset is None  # '*.csv' governs files, not their directory
    assert catalog.resolve("/srv/lake/a/b/part-0001.parquet").dataset.name == "deep"
    assert catalog.resolve("/srv/lake/part-0001.parquet").dataset.name == "deep"  # **/ matches zero dirs
    assert catalog.resolve("s3://bucket/prefix/x.csv").dataset.name == "s3"
    assert catalog.resolve("S3://BUCKET//prefix/./x.csv").dataset.name == "s3"
    assert catalog.resolve("s3://bucket/other/../prefix/x.csv").dataset.name == "s3"
    assert catalog.resolve("s3://bucket/elsewhere/x.csv").dataset is None
    assert catalog.resolve('Warehouse."HR".salaries', "table").dataset.name == "hr"
    assert catalog.resolve("warehouse.public.staff", "table").dataset.name == "hr"
    assert catalog.resolve("warehouse.public.other", "table").dataset is None
    assert catalog.resolve("data/clinics.csv").dataset is None


def test_most_specific_location_wins_and_ties_take_the_higher_label(tmp_path):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "d.yaml").write_text(
        """\
datasets:
  - {name: all, label: public, steward: S, locations: ["data/**"]}
  - {name: csvs, label: internal, steward: S, locations: ["data/*.csv"]}
  - {name: one, label: confidential, steward: S, locations: [data/one.csv]}
  - {name: tie-low, label: internal, steward: S, locations: ["data/x?.txt"]}
  - {name: tie-high, label: restricted, steward: S, locations: ["data/?y.txt"]}
"""
    )
    catalog = load_catalog(cat, str(tmp_path))
    assert catalog.resolve("data/one.csv").dataset.name == "one"  # exact beats globs
    assert catalog.resolve("data/two.csv").dataset.name == "csvs"  # more literal characters
    assert catalog.resolve("data/sub/two.csv").dataset.name == "all"
    assert catalog.resolve("data/xy.txt").dataset.name == "tie-high"  # equal specificity: higher label


# -- property: any spelling built from '.', '..', '//' and symlinks resolves the same ------------

segment = st.sampled_from(["data", "notes", "alias", "visits", "archive"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    detours=st.lists(st.tuples(segment, st.sampled_from(["/../", "/./../", "//../"])), max_size=4),
    dots=st.lists(st.sampled_from(["./", ".//", "././/"]), max_size=3),
    via=st.sampled_from(["data/patients.csv", "alias/patients.csv", "notes/innocent.csv"]),
    absolute=st.booleans(),
)
def test_property_detours_never_escape_the_label(world, detours, dots, via, absolute):
    root, catalog = world
    # every detour "x/../" returns where it started, whatever x is (a symlink included,
    # because realpath follows the link before applying '..' only for existing components)
    prefix = "".join(seg + back for seg, back in detours if (root / seg).is_dir() and not (root / seg).is_symlink())
    spelling = "".join(dots) + prefix + via
    target = str(root) + "/" + spelling if absolute else spelling
    res = catalog.resolve(target)
    assert res.dataset is not None and res.dataset.name == "patients", spelling


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet="abcdefgh._-/", min_size=1, max_size=30))
def test_property_resolution_is_idempotent(tmp_path_factory, name):
    # resolving the normalised target again gives the same target and dataset
    root = tmp_path_factory.getbasetemp()
    cat = root / "idem-cat"
    if not cat.exists():
        cat.mkdir()
        (cat / "d.yaml").write_text("datasets:\n  - {name: g, label: internal, steward: S, locations: ['**/*h*']}\n")
    catalog = load_catalog(cat, str(root))
    first = catalog.resolve(name)
    second = catalog.resolve(first.target)
    assert second.target == first.target
    assert (second.dataset and second.dataset.name) == (first.dataset and first.dataset.name)
