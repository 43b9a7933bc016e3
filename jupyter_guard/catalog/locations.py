"""Normalising read targets and finding the catalog location that governs them.

Three kinds of location share one index: local paths (absolute, symlinks resolved), URIs
(``s3://bucket/prefix/*``) and SQL tables (``source.schema.table``). Lookups must not be
fooled by spelling: relative paths, ``..``, symlinks, duplicate slashes, ``file://`` URIs and
``pathlib.Path`` objects all normalise to the same key before matching.

Most specific location wins: an exact location beats any glob; between globs, the one with
more literal (non-wildcard) characters wins; on an exact tie the more sensitive label wins,
so an ambiguity never lowers protection.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit

PATH, URI, TABLE = "path", "uri", "table"
_GLOB_CHARS = re.compile(r"[*?\[]")
_MULTI_SLASH = re.compile(r"/{2,}")

T = TypeVar("T")


def has_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def normalize_path(target: str | os.PathLike | bytes, root_dir: str) -> str:
    """An absolute, symlink-free spelling of a local path (relative paths start at root_dir)."""
    if isinstance(target, bytes):
        target = os.fsdecode(target)
    target = os.fspath(target)
    if target.startswith("file:"):
        target = file_uri_to_path(target)
    target = os.path.expanduser(target)
    if not os.path.isabs(target):
        target = os.path.join(root_dir, target)
    # realpath resolves "..", "." and symlinks (of every existing component)
    return _MULTI_SLASH.sub("/", os.path.realpath(target))


def file_uri_to_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URI names a remote host: {uri!r}")
    return unquote(parts.path) or "/"


def normalize_uri(uri: str) -> str:
    """Lower-case scheme and host, no duplicate slashes, '.' and '..' resolved, no query."""
    parts = urlsplit(uri)
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    path = unquote(parts.path)
    if path:
        trailing = path.endswith("/")
        path = posixpath.normpath("/" + path.lstrip("/"))
        if path == "/":
            path = ""
        elif trailing:
            path += "/"
    return f"{scheme}://{host}{path}"


def normalize_table(name: str) -> str:
    """``"Warehouse"."HR".people`` -> ``warehouse.hr.people``."""
    parts = [p.strip().strip('"`[]').lower() for p in name.split(".")]
    return ".".join(parts)


def classify(target: str | os.PathLike | bytes) -> str:
    """Which kind of location a plain target string is (tables are never guessed)."""
    if isinstance(target, (os.PathLike, bytes)):
        return PATH
    if target.startswith("file:"):
        return PATH
    return URI if "://" in target else PATH


def _translate(pattern: str, sep: str) -> str:
    """Glob -> regex: ``**`` crosses separators, ``*`` and ``?`` do not, ``[...]`` is a class."""
    out, i, n = [], 0, len(pattern)
    not_sep = f"[^{re.escape(sep)}]"
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith(sep, i):  # "**/" also matches zero directories
                out.append(f"(?:.*{re.escape(sep)})?")
                i += len(sep)
            else:
                out.append(".*")
        elif c == "*":
            out.append(not_sep + "*")
            i += 1
        elif c == "?":
            out.append(not_sep)
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Match(Generic[T]):
    item: T
    pattern: str
    specificity: tuple[int, int, int]


class LocationIndex(Generic[T]):
    """Exact keys in a dict; globs bucketed by their literal directory prefix.

    A lookup costs one dict probe plus one combined regex per ancestor of the target, so it
    stays flat as the catalog grows to tens of thousands of globbed locations.
    """

    def __init__(self, sep: str = "/"):
        self.sep = sep
        self._exact: dict[str, list[tuple[T, int, int]]] = {}
        self._pending: dict[str, list[tuple[str, T, int, int]]] = {}
        self._buckets: dict[str, tuple[re.Pattern, list[tuple[T, str, tuple]]]] | None = None

    def add(self, pattern: str, item: T, rank: int) -> None:
        """Add a normalised pattern; ``rank`` (label sensitivity) breaks specificity ties."""
        literal = len(_GLOB_CHARS.sub("", pattern.replace("**", "")))
        if not has_glob(pattern):
            self._exact.setdefault(pattern, []).append((item, literal, rank))
            return
        head = _GLOB_CHARS.split(pattern, 1)[0]
        prefix = head.rsplit(self.sep, 1)[0] if self.sep in head else ""
        self._pending.setdefault(prefix, []).append((pattern, item, literal, rank))
        self._buckets = None

    def _compile(self) -> dict:
        buckets = {}
        for prefix, entries in self._pending.items():
            # most specific first, so the first alternative that matches is the best in this bucket
            entries = sorted(entries, key=lambda e: (e[2], e[3]), reverse=True)
            regex = "|".join(f"({_translate(p, self.sep)})" for p, *_ in entries)
            meta = [(item, p, (0, literal, rank)) for p, item, literal, rank in entries]
            buckets[prefix] = (re.compile(f"(?s:{regex})\\Z"), meta)
        self._buckets = buckets
        return buckets

    def lookup(self, key: str) -> Match[T] | None:
        best: Match[T] | None = None
        for item, literal, rank in self._exact.get(key, ()):
            cand = Match(item, key, (1, literal, rank))
            if best is None or cand.specificity > best.specificity:
                best = cand
        if best is not None:
            return best
        buckets = self._buckets if self._buckets is not None else self._compile()
        if not buckets:
            return None
        prefix = key
        while True:
            cut = prefix.rfind(self.sep)
            prefix = prefix[:cut] if cut >= 0 else ""
            bucket = buckets.get(prefix)
            if bucket is not None:
                m = bucket[0].match(key)
                if m is not None:
                    item, pattern, spec = bucket[1][m.lastindex - 1]
                    if best is None or spec > best.specificity:
                        best = Match(item, pattern, spec)
            if not prefix:
                return best

    def patterns(self) -> list[str]:
        return [*self._exact, *(p for entries in self._pending.values() for p, *_ in entries)]
