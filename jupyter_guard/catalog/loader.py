"""Reading a catalog directory: every ``*.yaml`` / ``*.yml`` file below it, validated.

Each file holds one or more top-level sections: ``labels`` (at most once in the directory),
``datasets`` and ``sources`` (any number of files), and the policy sections ``roles``, ``rules``, ``defaults``
that :mod:`jupyter_guard.policy` builds. Every problem is collected with its file and line,
so one run of ``jupyter guard catalog validate`` shows them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CatalogError, Problem
from ._yaml import LineDict, LineList, load_yaml
from .locations import PATH, TABLE, URI
from .model import (
    COLUMN_RULES,
    DEFAULT_LABELS,
    SOURCE_PLACEHOLDERS,
    Catalog,
    ColumnRule,
    Contact,
    Dataset,
    Label,
    Location,
    Source,
    iter_labels,
    location_key,
    url_placeholders,
)

CATALOG_SECTIONS = ("labels", "datasets", "sources")
POLICY_SECTIONS = ("roles", "rules", "defaults")
SECTIONS = CATALOG_SECTIONS + POLICY_SECTIONS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ENTITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
DATASET_KEYS = {"name", "description", "label", "owner", "steward", "locations", "columns", "purposes", "access"}
ACCESS = ("direct", "brokered")
SOURCE_KEYS = {"name", "description", "url", "credential", "user", "label", "owner", "steward", "purposes", "access"}


@dataclass(frozen=True)
class Section:
    file: str
    key: str
    value: Any
    line: int


class Reporter:
    """Collects problems with file and line; `where(node, key)` finds the line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems

    def add(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(Problem(file, line, message))


def line_of(node: Any, key: Any = None, default: int = 0) -> int:
    if isinstance(node, LineDict):
        return node.line_of(key) if key is not None else node.line
    if isinstance(node, LineList):
        return node.line_of(key) if isinstance(key, int) else node.line
    return default


def catalog_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def read_sections(directory: str | Path, problems: list[Problem]) -> tuple[list[Section], list[str]]:
    """Parse every YAML file of the directory into top-level sections."""
    directory = Path(directory)
    if not directory.is_dir():
        problems.append(Problem(str(directory), None, "catalog directory does not exist"))
        return [], []
    sections, files = [], []
    for path in catalog_files(directory):
        files.append(str(path))
        before = len(problems)
        data = load_yaml(path, problems)
        if data is None:
            if len(problems) == before:  # empty, or only comments: what a truncate-then-write leaves for a moment
                problems.append(Problem(str(path), None, "the file is empty; a catalog file holds at least one "
                                        "section (delete the file to drop it)"))
            continue
        if not isinstance(data, LineDict):
            problems.append(Problem(str(path), line_of(data, default=1), "expected a mapping of sections"))
            continue
        for key, value in data.items():
            if key not in SECTIONS:
                problems.append(
                    Problem(str(path), data.line_of(key), f"unknown section {key!r} (expected one of {', '.join(SECTIONS)})")
                )
                continue
            sections.append(Section(str(path), key, value, data.line_of(key)))
    return sections, files


def build_labels(sections: list[Section], report: Reporter) -> tuple[Label, ...]:
    found = [s for s in sections if s.key == "labels"]
    if not found:
        return iter_labels(DEFAULT_LABELS)
    for extra in found[1:]:
        report.add(extra.file, extra.line, f"labels are defined again (first at {found[0].file}:{found[0].line})")
    sec = found[0]
    if not isinstance(sec.value, list) or not sec.value:
        report.add(sec.file, sec.line, "labels must be a non-empty list, least sensitive first")
        return iter_labels(DEFAULT_LABELS)
    labels, seen = [], set()
    for i, item in enumerate(sec.value):
        line = line_of(sec.value, i, sec.line)
        spec = {"name": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            report.add(sec.file, line, "a label is a name or a mapping with 'name' (and optional description, color)")
            continue
        unknown = set(spec) - {"name", "description", "color"}
        if unknown:
            report.add(sec.file, line, f"unknown label field(s): {', '.join(sorted(map(str, unknown)))}")
        name = spec["name"]
        if name in seen:
            report.add(sec.file, line, f"label {name!r} is listed twice")
            continue
        seen.add(name)
        labels.append(Label(name, len(labels), str(spec.get("description", "")), str(spec.get("color", ""))))
    return tuple(labels)


def _contact(value: Any, file: str, line: int, report: Reporter) -> Contact | None:
    if isinstance(value, str) and value.strip():
        m = re.match(r"^\s*(.*?)\s*<([^>]+)>\s*$", value)
        return Contact(m.group(1) or m.group(2), m.group(2)) if m else Contact(value.strip())
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return Contact(value["name"], str(value.get("email", "")))
    report.add(file, line, "steward must be 'Name <email>' or a mapping with name and email")
    return None


def _location(item: Any, root_dir: str, file: str, line: int, report: Reporter) -> Location | None:
    if isinstance(item, str):
        kind, source = (URI if "://" in item and not item.startswith("file:") else PATH), item
    elif isinstance(item, dict) and len(item) == 1 and next(iter(item)) in (PATH, URI, TABLE):
        kind, source = next(iter(item.items()))
        if not isinstance(source, str):
            report.add(file, line, f"{kind} location must be a string")
            return None
    else:
        report.add(file, line, "a location is a path string, or a mapping with one of path:, uri:, table:")
        return None
    if not source.strip():
        report.add(file, line, "empty location")
        return None
    if kind == PATH and source.startswith("file:"):
        kind, source = PATH, source
    if kind == TABLE and not all(source.split(".")):
        report.add(file, line, f"table location {source!r} must be source.schema.table (wildcards allowed)")
        return None
    if kind == URI and "://" not in source:
        report.add(file, line, f"uri location {source!r} has no scheme://")
        return None
    try:
        return Location(kind, location_key(kind, source, root_dir), source)
    except ValueError as e:
        report.add(file, line, str(e))
        return None


def _identity(
    kind: str, keys: set[str], spec: dict, file: str, line: int, labels: dict[str, Label], report: Reporter
) -> tuple[bool, Any, Label | None, Contact | None]:
    """What datasets and sources share: known fields, a name, a label and a steward to ask."""
    for key in sorted(set(spec) - keys, key=str):
        report.add(file, line_of(spec, key, line), f"unknown {kind} field {key!r} (expected one of {', '.join(sorted(keys))})")
    ok = True
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        report.add(file, line_of(spec, "name", line), f"{kind} name is required: letters, digits, '_', '.', '-'")
        ok = False
    label_name = spec.get("label")
    label = labels.get(label_name) if isinstance(label_name, str) else None
    if label is None:
        report.add(
            file,
            line_of(spec, "label", line),
            f"unknown label {label_name!r} (labels: {', '.join(labels)})" if label_name else f"{kind} {name!r} has no label",
        )
        ok = False
    steward = None
    if "steward" not in spec:
        report.add(file, line, f"{kind} {name!r} has no steward (who people ask for access)")
        ok = False
    else:
        steward = _contact(spec["steward"], file, line_of(spec, "steward", line), report)
        ok = ok and steward is not None
    return ok, name, label, steward


def _purposes(spec: dict, file: str, line: int, report: Reporter) -> list[str] | None:
    """The purposes a dataset or source may be used for; None (reported) when malformed."""
    purposes = spec.get("purposes", []) or []
    if not isinstance(purposes, list) or not all(isinstance(p, str) and NAME_RE.match(p) for p in purposes):
        report.add(file, line_of(spec, "purposes", line), "purposes is a list of names")
        return None
    return purposes


def build_dataset(
    spec: Any, file: str, line: int, labels: dict[str, Label], root_dir: str, report: Reporter
) -> Dataset | None:
    if not isinstance(spec, dict):
        report.add(file, line, "a dataset is a mapping with name, label, steward and locations")
        return None
    ok, name, label, steward = _identity("dataset", DATASET_KEYS, spec, file, line, labels, report)
    raw_locs = spec.get("locations")
    locations = []
    if not isinstance(raw_locs, list) or not raw_locs:
        report.add(file, line_of(spec, "locations", line), "dataset needs a non-empty list of locations")
        ok = False
    else:
        for i, item in enumerate(raw_locs):
            loc = _location(item, root_dir, file, line_of(raw_locs, i, line), report)
            ok = ok and loc is not None
            if loc:
                locations.append(loc)
    columns = []
    raw_cols = spec.get("columns", {}) or {}
    if not isinstance(raw_cols, dict):
        report.add(file, line_of(spec, "columns", line), "columns is a mapping: column name -> {entity, rule}")
        ok = False
        raw_cols = {}
    for col, rule in raw_cols.items():
        cline = line_of(raw_cols, col, line)
        if isinstance(rule, str):
            rule = {"entity": rule}
        if not isinstance(rule, dict) or not isinstance(rule.get("entity"), str) or not ENTITY_RE.match(rule["entity"]):
            report.add(file, cline, f"column {col!r}: entity must be a Presidio entity name such as US_SSN, or FREE_TEXT")
            ok = False
            continue
        how = rule.get("rule", "scan" if rule["entity"] == "FREE_TEXT" else "mask")
        if how not in COLUMN_RULES or set(rule) - {"entity", "rule"}:
            report.add(file, cline, f"column {col!r}: rule must be one of {', '.join(COLUMN_RULES)}")
            ok = False
            continue
        columns.append(ColumnRule(str(col), rule["entity"], how))
    purposes = _purposes(spec, file, line, report)
    ok = ok and purposes is not None
    access = _access(spec, file, line, report)
    ok = ok and access is not None
    if not ok:
        return None
    return Dataset(
        access=access,
        name=name,
        label=label,
        description=str(spec.get("description", "") or ""),
        owner=str(spec.get("owner", "") or ""),
        steward=steward,
        locations=tuple(locations),
        columns=tuple(columns),
        purposes=tuple(purposes),
        file=file,
        line=line,
    )


def _access(spec: dict, file: str, line: int, report: Reporter) -> str | None:
    """``access: direct | brokered`` ("" when not given); None (reported) when it is neither."""
    access = spec.get("access") or ""
    if access and access not in ACCESS:
        report.add(file, line_of(spec, "access", line), f"access must be one of {', '.join(ACCESS)}, not {access!r}")
        return None
    return access


def build_source(spec: Any, file: str, line: int, labels: dict[str, Label], report: Reporter) -> Source | None:
    """One entry of a ``sources`` section; every problem is reported with its line."""
    if not isinstance(spec, dict):
        report.add(file, line, "a source is a mapping with name, url, label and steward (and credential, user)")
        return None
    ok, name, label, steward = _identity("source", SOURCE_KEYS, spec, file, line, labels, report)
    credential = spec.get("credential")
    if credential is not None and (not isinstance(credential, str) or not NAME_RE.match(credential)):
        report.add(file, line_of(spec, "credential", line), "credential is the name of a secret: letters, digits, '_', '.', '-'")
        ok, credential = False, None
    user = spec.get("user")
    if user is not None and (not isinstance(user, (str, int)) or isinstance(user, bool) or not str(user)):
        report.add(file, line_of(spec, "user", line), "user is a user name (fills {user} in the url)")
        ok, user = False, None
    url = spec.get("url")
    uline = line_of(spec, "url", line)
    if not isinstance(url, str) or not url.strip():
        report.add(file, uline, "source needs a url: a SQLAlchemy URL template such as "
                   "postgresql+psycopg://{user}:{password}@host:5432/db or sqlite:////path/file.db")
        ok = False
    elif "://" not in url:
        report.add(file, uline, f"url {url!r} has no scheme:// (a SQLAlchemy URL such as postgresql+psycopg://... or sqlite:///...)")
        ok = False
    else:
        try:
            fields = url_placeholders(url)
        except ValueError as e:
            report.add(file, uline, str(e))
            fields, ok = [], False
        userinfo = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo and userinfo.split(":", 1)[1] != "{password}":
            report.add(file, uline, "url has a password written in it: put the password in a secret, name it in "
                       "credential:, and write {password} in the url")
            ok = False
        for field_name in dict.fromkeys(fields):
            if field_name == "user" and (user is not None or credential):
                continue
            if field_name == "password" and credential:
                continue
            if field_name not in SOURCE_PLACEHOLDERS and credential:
                continue  # filled from a key of the JSON secret; checked when the secret is read
            if field_name == "password":
                why = "a url with {password} needs credential: (the name of the secret)"
            elif field_name == "user":
                why = "{user} needs user: or a credential whose secret is JSON with a user key"
            else:
                why = ("only {user} and {password} are known; other placeholders come from the keys of a "
                       "JSON secret, and this source has no credential")
            report.add(file, uline, f"unknown placeholder {{{field_name}}} in url: {why}")
            ok = False
    purposes = _purposes(spec, file, line, report)
    ok = ok and purposes is not None
    access = _access(spec, file, line, report)
    ok = ok and access is not None
    if not ok:
        return None
    return Source(
        access=access or "",
        name=name,
        url=url,
        label=label,
        credential=credential,
        user=str(user) if user is not None else None,
        description=str(spec.get("description", "") or ""),
        owner=str(spec.get("owner", "") or ""),
        steward=steward,
        purposes=tuple(purposes),
        file=file,
        line=line,
    )


def build_sources(sections: list[Section], labels: dict[str, Label], report: Reporter) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for sec in sections:
        if sec.key != "sources":
            continue
        if not isinstance(sec.value, list):
            report.add(sec.file, sec.line, "sources must be a list")
            continue
        for i, spec in enumerate(sec.value):
            line = line_of(sec.value, i, sec.line)
            src = build_source(spec, sec.file, line, labels, report)
            if src is None:
                continue
            if src.name in sources:
                first = sources[src.name]
                report.add(sec.file, line, f"source {src.name!r} is defined twice (first at {first.file}:{first.line})")
                continue
            sources[src.name] = src
    return sources


def build_catalog(
    sections: list[Section], root_dir: str, problems: list[Problem], directory: str = "", files: tuple = ()
) -> Catalog:
    report = Reporter(problems)
    labels = build_labels(sections, report)
    by_name = {label.name: label for label in labels}
    datasets: dict[str, Dataset] = {}
    owner_of_location: dict[tuple[str, str], Dataset] = {}
    for sec in sections:
        if sec.key != "datasets":
            continue
        if not isinstance(sec.value, list):
            report.add(sec.file, sec.line, "datasets must be a list")
            continue
        for i, spec in enumerate(sec.value):
            line = line_of(sec.value, i, sec.line)
            ds = build_dataset(spec, sec.file, line, by_name, root_dir, report)
            if ds is None:
                continue
            if ds.name in datasets:
                first = datasets[ds.name]
                report.add(sec.file, line, f"dataset {ds.name!r} is defined twice (first at {first.file}:{first.line})")
                continue
            for loc in ds.locations:
                other = owner_of_location.get((loc.kind, loc.pattern))
                if other is not None:
                    report.add(
                        sec.file,
                        line,
                        f"location {loc.source!r} of dataset {ds.name!r} is also a location of "
                        f"{other.name!r} ({other.file}:{other.line}); a location belongs to one dataset",
                    )
                owner_of_location[(loc.kind, loc.pattern)] = ds
            datasets[ds.name] = ds
    sources = build_sources(sections, by_name, report)
    return Catalog(labels, datasets, root_dir, directory, tuple(files), sources=sources)


def load_catalog(directory: str | Path, root_dir: str) -> Catalog:
    """Load and validate a catalog directory; raise CatalogError listing every problem."""
    problems: list[Problem] = []
    sections, files = read_sections(directory, problems)
    catalog = build_catalog(sections, root_dir, problems, str(directory), tuple(files))
    if problems:
        raise CatalogError(problems)
    return catalog
