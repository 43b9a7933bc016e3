"""The catalog: ordered sensitivity labels, datasets, their locations and column rules."""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .locations import (
    PATH,
    TABLE,
    URI,
    LocationIndex,
    classify,
    has_glob,
    normalize_path,
    normalize_table,
    normalize_uri,
)

DEFAULT_LABELS = ("public", "internal", "confidential", "restricted")

#: what a column rule does to a value when a read is redacted
COLUMN_RULES = ("mask", "replace", "hash", "encrypt", "scan", "drop", "keep")


@dataclass(frozen=True)
class Label:
    name: str
    rank: int  # 0 is the least sensitive
    description: str = ""
    color: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "rank": self.rank, "color": self.color, "description": self.description}


@dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name

    def to_dict(self) -> dict:
        return {"name": self.name, "email": self.email}


@dataclass(frozen=True)
class ColumnRule:
    column: str
    entity: str  # a Presidio entity name (US_SSN, EMAIL_ADDRESS, PERSON, ...) or FREE_TEXT
    rule: str  # one of COLUMN_RULES


@dataclass(frozen=True)
class Location:
    kind: str  # path | uri | table
    pattern: str  # normalised
    source: str  # as written in the catalog
    copied_from: str = ""  # a copy made through the server (see Catalog.with_copies): its source


@dataclass(frozen=True)
class Dataset:
    name: str
    label: Label
    description: str = ""
    owner: str = ""
    steward: Contact | None = None
    locations: tuple[Location, ...] = ()
    columns: tuple[ColumnRule, ...] = ()
    purposes: tuple[str, ...] = ()
    file: str = ""
    line: int = 0
    #: "brokered": only the guard reads it (docs/admin-guide.md "Brokered reads"); "direct": the
    #: kernel reads it itself; "": as the policy's defaults.brokered_labels say under a service
    access: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "access": self.access or None,
            "description": self.description,
            "label": self.label.name,
            "owner": self.owner,
            "steward": self.steward.to_dict() if self.steward else None,
            "locations": [{"kind": loc.kind, "location": loc.source, **({"copied_from": loc.copied_from}
                                                                        if loc.copied_from else {})}
                          for loc in self.locations],
            "columns": [{"name": c.column, "entity": c.entity, "rule": c.rule} for c in self.columns],
            "purposes": list(self.purposes),
        }


@dataclass(frozen=True)
class Source:
    """A data source researchers connect to by name (``connect("warehouse")`` in a kernel).

    ``url`` is a SQLAlchemy URL template: ``{user}`` and ``{password}`` are filled (URL-quoted)
    from ``user`` and the secret named ``credential``; a secret that is a JSON object also
    fills ``{user}``, ``{password}`` and any other placeholder named by one of its keys.
    Policy decides the ``credential`` action on it like a dataset of its label.
    """

    name: str
    url: str
    label: Label
    credential: str | None = None
    user: str | None = None
    description: str = ""
    owner: str = ""
    steward: Contact | None = None
    purposes: tuple[str, ...] = ()
    file: str = ""
    line: int = 0
    #: "brokered": only the guard connects to it (its secret never reaches a kernel; SQL reads
    #: of its tables are run by the guard); as Dataset.access
    access: str = ""

    @property
    def dialect(self) -> str:
        """The URL's backend (``postgresql`` for ``postgresql+psycopg://...``): no secret in it."""
        return self.url.split("://", 1)[0].split("+", 1)[0].lower()

    def as_dataset(self) -> Dataset:
        """What the policy sees: a dataset named like the source, of its label, with no locations."""
        return Dataset(
            name=self.name,
            label=self.label,
            access=self.access,
            description=self.description,
            owner=self.owner,
            steward=self.steward,
            purposes=self.purposes,
            file=self.file,
            line=self.line,
        )

    def to_dict(self) -> dict:
        """The source as listed to users: never a secret (the URL template has placeholders)."""
        return {
            "name": self.name,
            "description": self.description,
            "label": self.label.name,
            "owner": self.owner,
            "steward": self.steward.to_dict() if self.steward else None,
            "url": self.url,
            "credential": self.credential,
            "user": self.user,
            "purposes": list(self.purposes),
        }


#: placeholders a source URL template fills without a JSON secret
SOURCE_PLACEHOLDERS = ("user", "password")


def url_placeholders(template: str) -> list[str]:
    """The ``{name}`` fields of a URL template, in order; ValueError for anything but plain names.

    ``{{`` and ``}}`` are literal braces. Format specs, conversions, indexes and attributes
    (``{x:>3}``, ``{x!r}``, ``{x[0]}``, ``{x.y}``, ``{}``) are refused: a template is filled by
    plain substitution, never by ``str.format``.
    """
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"malformed placeholder in URL template: {e}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier() or spec or conversion:
            shown = "{" + field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"placeholder {shown} is not a plain name such as {{user}} or {{password}}")
        names.append(field_name)
    return names


def render_url(template: str, values: dict[str, str]) -> str:
    """Fill a URL template's placeholders by plain substitution (values are used as given)."""
    out = []
    for literal, field_name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field_name is not None:
            out.append(values[field_name])
    return "".join(out)


@dataclass(frozen=True)
class Resolution:
    """What a read target is: its normalised spelling and the dataset governing it, if any."""

    kind: str
    target: str
    dataset: Dataset | None = None
    location: str | None = None

    @property
    def label(self) -> Label | None:
        return self.dataset.label if self.dataset else None


@dataclass
class Catalog:
    labels: tuple[Label, ...]
    datasets: dict[str, Dataset]
    root_dir: str
    directory: str = ""
    files: tuple[str, ...] = ()
    sources: dict[str, Source] = field(default_factory=dict)
    _indexes: dict[str, LocationIndex] = field(default_factory=dict, repr=False)
    _folders: dict[str, tuple[Dataset, ...]] | None = field(default=None, repr=False, compare=False)
    _mentions: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._label_by_name = {label.name: label for label in self.labels}
        self._indexes = {PATH: LocationIndex("/"), URI: LocationIndex("/"), TABLE: LocationIndex(".")}
        for ds in self.datasets.values():
            for loc in ds.locations:
                self._indexes[loc.kind].add(loc.pattern, ds, ds.label.rank)

    def label(self, name: str) -> Label | None:
        return self._label_by_name.get(name)

    def with_copies(self, copies: Mapping[str, tuple[str, str]]) -> Catalog:
        """This catalog with each server-made copy governed as its source.

        ``copies`` maps a copy's normalised path to ``(dataset name, the path it was copied
        from)``. A copy of a dataset this catalog no longer has is left out: it is governed as
        its source would be, and the source is no longer governed.
        """
        extra: dict[str, list[Location]] = {}
        for path, (name, source) in copies.items():
            if name in self.datasets:  # a file, a directory's "dir/**" or a written pattern
                extra.setdefault(name, []).append(Location(PATH, path, path, copied_from=source))
        if not extra:
            return self
        datasets = {name: replace(ds, locations=ds.locations + tuple(extra.get(name, ())))
                    for name, ds in self.datasets.items()}
        return Catalog(self.labels, datasets, self.root_dir, self.directory, self.files, self.sources)

    def resolve(self, target: str | os.PathLike | bytes, kind: str | None = None) -> Resolution:
        """The dataset that governs a path, URI or (with kind="table") SQL table name."""
        kind = kind or classify(target)
        if kind == "dataset":  # jupyter_guard.read("patients"): the dataset's first path location
            ds = self.datasets.get(os.fspath(target))
            loc = next((loc for loc in ds.locations if loc.kind == PATH), None) if ds else None
            if loc is None:
                raise ValueError(f"no dataset {target!r} with a file location in the catalog")
            return Resolution(PATH, loc.pattern, ds, loc.pattern)
        if kind == PATH:
            key = normalize_path(target, self.root_dir)
        elif kind == URI:
            key = normalize_uri(os.fspath(target))
        elif kind == TABLE:
            key = normalize_table(os.fspath(target))
        else:
            raise ValueError(f"unknown target kind {kind!r} (expected path, uri or table)")
        match = self._indexes[kind].lookup(key)
        if match is None and kind == PATH and os.path.isdir(key):
            # a directory itself (a parquet dataset, say) is governed by a `dir/` location
            match = self._indexes[kind].lookup(key.rstrip("/") + "/")
        if match is None:
            return Resolution(kind, key)
        return Resolution(kind, key, match.item, match.pattern)

    def search(self, query: str = "") -> list[Dataset]:
        """Datasets whose name, description, label, steward or columns mention every word."""
        return _search(
            self.datasets.values(), query, lambda ds: [f"{c.column} {c.entity}" for c in ds.columns]
        )

    def search_sources(self, query: str = "") -> list[Source]:
        """Data sources whose name, description, label, steward or owner mention every word."""
        return _search(self.sources.values(), query, lambda src: [])

    def folders(self) -> Mapping[str, tuple[Dataset, ...]]:
        """Folder (normalised, under root_dir) -> the datasets located below it, most sensitive first.

        Built on first use and kept with this catalog (a reload builds a new catalog); see
        :mod:`jupyter_guard.catalog.folders`.
        """
        if self._folders is None:
            from .folders import build_folder_index

            self._folders = build_folder_index(self.datasets.values(), self.root_dir)
        return self._folders

    def mentions(self, code: str) -> list[str]:
        """The datasets and sources whose names or locations the code names (one regex pass;
        see :mod:`jupyter_guard.catalog.mentions`). Built on first use, kept with this catalog."""
        if self._mentions is None:
            from .mentions import Mentions

            entries = [(ds.name, [(loc.kind, loc.source) for loc in ds.locations]) for ds in self.datasets.values()]
            entries += [(src.name, []) for src in self.sources.values()]
            self._mentions = Mentions(entries)
        return self._mentions(code)

    def summary(self) -> dict:
        counts = {label.name: 0 for label in self.labels}
        for ds in self.datasets.values():
            counts[ds.label.name] += 1
        return {
            "directory": self.directory,
            "datasets": len(self.datasets),
            "sources": len(self.sources),
            "labels": [label.name for label in self.labels],
            "datasets_by_label": counts,
        }


def _search(items: Iterable, query: str, extra: Callable[[Any], list[str]]) -> list:
    words = query.lower().split()
    found = []
    for item in items:
        hay = " ".join(
            [item.name, item.description, item.label.name, str(item.steward or ""), item.owner, *extra(item)]
        ).lower()
        if all(w in hay for w in words):
            found.append(item)
    return sorted(found, key=lambda i: i.name)


def location_key(kind: str, source: str, root_dir: str) -> str:
    """Normalise a catalog location the same way read targets are normalised.

    For globs only the literal directory part is resolved on disk (a symlinked directory
    in the pattern is followed); the wildcard part is kept as written.
    """
    if kind == TABLE:
        return normalize_table(source)
    if kind == URI:
        return normalize_uri(source)
    if source.endswith("/"):  # a directory governs everything below it
        source += "**"
    if not has_glob(source):
        return normalize_path(source, root_dir)
    cut = min(i for i in (source.find("*"), source.find("?"), source.find("[")) if i >= 0)
    literal_dir = source[:cut].rsplit("/", 1)[0] if "/" in source[:cut] else ""
    if not literal_dir and source.startswith("/"):
        literal_dir = "/"
    rest = source[len(literal_dir) :].lstrip("/") if literal_dir else source
    base = normalize_path(literal_dir or ".", root_dir)
    return base.rstrip("/") + "/" + rest


def iter_labels(names: Iterable[str]) -> tuple[Label, ...]:
    return tuple(Label(name, rank) for rank, name in enumerate(names))
