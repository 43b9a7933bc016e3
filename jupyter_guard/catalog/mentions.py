"""Which governed datasets a piece of code names: one pass of one compiled pattern.

The server reads every executed cell's code (and its shell escapes: ``!cat data/x.csv`` is
code too) on the kernel channel. A cell that touches governed data without the kernel's hooks
(``subprocess``, ``!cat``, duckdb, sqlite3, the guard unloaded for a moment) asks for no
decision, so the server matches its code against what the catalog knows: the literal part of
every location as written (a path, its file name, a glob's literal directory, a URI prefix, a
table name and its last part) and every dataset and source name. All of them are one regex
alternation (longest first, bounded by non-word characters), built once per catalog, so a
cell costs one scan whatever the catalog's size; the hits map back to datasets.

It is a sensor: it over-reports (a comment that names a file counts) rather than under-reports,
and code that builds a name at run time (``"pat" + "ients.csv"``) is not seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .locations import has_glob

_GLOB = re.compile(r"[*?\[]")
MIN_TOKEN = 3  # shorter literals ("hr") would match everywhere: the dataset name still counts as a word


def _literals(kind: str, source: str) -> set[str]:
    text = source.strip()
    if kind == "path":
        head = _GLOB.split(text, 1)[0] if has_glob(text) else text
        out = {head.rstrip("/")} if head.strip("/") else set()
        if not has_glob(text):
            out.add(text.rsplit("/", 1)[-1])  # the file name alone: pd.read_csv(os.path.join(d, "x.csv"))
        return {t for t in out if len(t) >= MIN_TOKEN}
    if kind == "uri":
        head = _GLOB.split(text, 1)[0]
        return {head.rstrip("/")} if len(head.split("://", 1)[-1]) >= MIN_TOKEN else set()
    head = _GLOB.split(text, 1)[0].rstrip(".")  # table: warehouse.hr.* -> warehouse.hr; and the last part
    out = {head} if head else set()
    last = head.rsplit(".", 1)[-1]
    if not has_glob(text) and len(last) >= MIN_TOKEN:
        out.add(last)
    return {t for t in out if len(t) >= MIN_TOKEN}


class Mentions:
    """The datasets named in code. Built from (name, [(kind, location as written)]) pairs."""

    def __init__(self, entries: Iterable[tuple[str, Iterable[tuple[str, str]]]]):
        owners: dict[str, set[str]] = {}
        for name, locations in entries:
            owners.setdefault(name.lower(), set()).add(name)
            for kind, source in locations:
                for token in _literals(kind, source):
                    owners.setdefault(token.lower(), set()).add(name)
        self._owners = owners
        tokens = sorted(owners, key=lambda t: (-len(t), t))
        self._pattern = re.compile(
            r"(?<![\w])(" + "|".join(re.escape(t) for t in tokens) + r")(?![\w])", re.IGNORECASE
        ) if tokens else None

    def __call__(self, code: str) -> list[str]:
        """The names of the datasets (and sources) the code mentions, sorted."""
        if self._pattern is None or not code:
            return []
        found: set[str] = set()
        for m in self._pattern.finditer(code):
            found |= self._owners.get(m.group(1).lower(), set())
        return sorted(found)
