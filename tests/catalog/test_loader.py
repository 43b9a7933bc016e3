"""Catalog loading: every problem is reported with file and line, nothing invalid is accepted."""

from __future__ import annotations

import textwrap

import pytest

from jupyter_guard.catalog import load_catalog
from jupyter_guard.errors import CatalogError


def problems_of(tmp_path, files: dict[str, str]) -> list[str]:
    cat = tmp_path / "cat"
    cat.mkdir()
    for name, text in files.items():
        (cat / name).write_text(textwrap.dedent(text))
    with pytest.raises(CatalogError) as info:
        load_catalog(cat, str(tmp_path))
    return [str(p) for p in info.value.problems]


def test_valid_catalog_loads_with_default_labels(tmp_path):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "d.yaml").write_text(
        "datasets:\n  - name: a\n    label: internal\n    steward: X <x@example.org>\n    locations: [a.csv]\n"
    )
    catalog = load_catalog(cat, str(tmp_path))
    assert [lab.name for lab in catalog.labels] == ["public", "internal", "confidential", "restricted"]
    ds = catalog.datasets["a"]
    assert ds.label.rank == 1 and ds.steward.email == "x@example.org"


def test_malformed_yaml_names_file_and_line(tmp_path):
    found = problems_of(tmp_path, {"bad.yaml": "datasets:\n  - name: a\n    label: [unclosed\n"})
    assert len(found) == 1
    assert "bad.yaml:4" in found[0] or "bad.yaml:3" in found[0]
    assert "YAML syntax error" in found[0]


def test_unknown_label_duplicate_name_and_typo_are_all_reported(tmp_path):
    found = problems_of(
        tmp_path,
        {
            "a.yaml": """\
            datasets:
              - name: one
                label: secret
                steward: S <s@example.org>
                locations: [x.csv]
              - name: two
                label: public
                lable: public
                steward: S <s@example.org>
                locations: [y.csv]
            """,
            "b.yaml": """\
            datasets:
              - name: two
                label: public
                steward: S <s@example.org>
                locations: [z.csv]
            """,
        },
    )
    text = "\n".join(found)
    assert "a.yaml:3: unknown label 'secret'" in text
    assert "a.yaml:8: unknown dataset field 'lable'" in text
    assert "b.yaml:2: dataset 'two' is defined twice (first at" in text and "a.yaml:6" in text


def test_same_location_in_two_datasets_is_an_error(tmp_path):
    found = problems_of(
        tmp_path,
        {
            "a.yaml": """\
            datasets:
              - name: one
                label: public
                steward: S
                locations: [data/x.csv]
              - name: two
                label: restricted
                steward: S
                locations: [data/../data/x.csv]
            """
        },
    )
    assert any("a.yaml:6" in p and "also a location of 'one'" in p for p in found)


def test_bad_columns_locations_and_sections(tmp_path):
    found = problems_of(
        tmp_path,
        {
            "a.yaml": """\
            datasetz: []
            datasets:
              - name: one
                label: public
                steward: S
                locations: [{table: "a..b"}, {ftp: x}]
                columns:
                  ssn: {entity: us_ssn}
                  email: {entity: EMAIL_ADDRESS, rule: scramble}
            """
        },
    )
    text = "\n".join(found)
    assert "a.yaml:1: unknown section 'datasetz'" in text
    assert "a.yaml:6: table location 'a..b'" in text
    assert "a.yaml:6: a location is a path string" in text
    assert "a.yaml:8: column 'ssn': entity must be" in text
    assert "a.yaml:9: column 'email': rule must be one of" in text


def test_labels_section_orders_sensitivity(tmp_path):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "labels.yaml").write_text("labels: [open, {name: closed, color: red}]\n")
    (cat / "d.yaml").write_text("datasets:\n  - {name: a, label: closed, steward: S, locations: [a]}\n")
    catalog = load_catalog(cat, str(tmp_path))
    assert catalog.datasets["a"].label.rank == 1
    assert catalog.label("closed").color == "red"


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope", str(tmp_path))


def test_non_utf8_bytes(tmp_path):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "x.yaml").write_bytes(b"datasets:\n  - name: \xff\xfe\n")
    with pytest.raises(CatalogError, match="x.yaml: not UTF-8"):
        load_catalog(cat, str(tmp_path))
