"""Secrets out of text: known secret values (and every spelling of them) and detected ones.

One module for both kinds, shared by the server (kernel messages going to the browser, code
stored on the audit record, exports) and the kernel (its outgoing messages):

* :class:`SecretMasker` replaces *known* values -- the secrets the server handed to a kernel --
  in text, in JSON-like values and in raw JSON frames, in every spelling they take in output
  (:func:`spellings`: URL-quoted, JSON/repr-escaped, libpq conninfo, HTML-escaped);
* :func:`mask_secrets` replaces *detected* secrets in code before it is stored. Detection is
  detect-secrets' (basic-auth URLs, AWS/GitHub/Slack/Stripe keys, JWTs, private keys, keyword
  assignments such as ``password = "..."``). Its entropy detectors fire on any long-ish token
  when run line by line, so they count only for string literals of 20 characters or more. A
  short hit (under 8 characters) inside a string literal masks the whole literal, because
  detectors sometimes report only a token's prefix.

Imports no web framework; detect-secrets is imported on first use.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_STRING = re.compile(r"""(?P<q>['"])(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_ENTROPY_MIN = 20


def spellings(secret: str) -> set[str]:
    """The forms in which ``secret`` may show up in text output."""
    out = {secret, quote(secret, safe=" +"), quote(secret, safe=""), quote_plus(secret)}
    out.add(repr(secret)[1:-1])
    out.add(json.dumps(secret)[1:-1])
    out.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    out.add(secret.replace("\\", "\\\\").replace("'", "\\'"))  # a libpq conninfo value (password='...')
    out.add(html.escape(secret))
    out.add(html.escape(secret, quote=False))
    return {s for s in out if s}


def known_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching every spelling of every secret, longest first (no partial leftovers)."""
    values: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and secret.strip():
            values |= spellings(secret)
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=lambda v: (-len(v), v))))


class SecretMasker:
    """Replaces known secret values by ``***``; values can be added at any time (thread-safe).

    Objects that hold no secret are returned as they are (no copy), so a masker with secrets
    costs one regex search per string it is shown.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._raw: tuple[bytes, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> bool:
        """Mask these values too; True when any was new."""
        new = {s for s in (secrets or ()) if isinstance(s, str) and s.strip()} - self._secrets
        if not new:
            return False
        with self._lock:
            self._secrets = self._secrets | new
            self._pattern = known_pattern(self._secrets)
            texts = {v for s in self._secrets for v in spellings(s)}
            raw = {t.encode("utf-8") for t in texts}
            raw |= {json.dumps(t)[1:-1].encode("ascii") for t in texts}  # as a JSON frame carries it
            raw |= {json.dumps(t, ensure_ascii=False)[1:-1].encode("utf-8") for t in texts}
            self._raw = tuple(sorted(raw, key=len, reverse=True))
        return True

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def __len__(self) -> int:
        return len(self._secrets)

    def text(self, value: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, value) if pattern is not None and value else value

    def obj(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, strings, bytes; keys too) with secrets masked."""
        pattern = self._pattern
        return value if pattern is None else self._mask(value, pattern)

    def _mask(self, value: Any, pattern: re.Pattern[str]) -> Any:
        if isinstance(value, str):
            return pattern.sub(MASK, value) if value else value
        if isinstance(value, dict):
            out = None
            for k, v in value.items():
                m = self._mask(v, pattern)
                mk = self._mask(k, pattern) if isinstance(k, str) else k
                if m is not v or mk is not k:
                    if out is None:
                        out = dict(value)
                    if mk is not k:
                        del out[k]
                    out[mk] = m
            return value if out is None else out
        if isinstance(value, (list, tuple)):
            items = [self._mask(v, pattern) for v in value]
            if all(a is b for a, b in zip(items, value)):
                return value
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, (bytes, bytearray)):
            return self.raw(bytes(value))
        return value

    def raw(self, data: bytes) -> bytes:
        """Bytes with every byte form of the secrets replaced."""
        out = data
        for form in self._raw:
            if form in out:
                out = out.replace(form, MASK.encode())
        return out

    def frame(self, data: Any) -> Any:
        """One JSON frame of a wire message (metadata or content) with the secrets masked."""
        raw = data if isinstance(data, bytes) else bytes(getattr(data, "bytes", data))
        if not any(form in raw for form in self._raw):
            return data
        try:
            decoded = json.loads(raw)
        except ValueError:  # not JSON: replace the byte forms where they are
            return self.raw(raw)
        return json.dumps(self.obj(decoded), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _hits(lines: list[str]) -> list[list[str]]:
    """The secret values detect-secrets finds in each line, under one settings context (entering
    it costs more than scanning a line)."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    from .scan_secrets import DETECT_SECRETS_LOCK

    out = []
    with DETECT_SECRETS_LOCK, default_settings():
        for line in lines:
            values = []
            for found in scan_line(line):
                value = found.secret_value or ""
                if not value:
                    continue
                if "High Entropy" in found.type and (len(value) < _ENTROPY_MIN or not _in_literal(line, value)):
                    continue
                values.append(value)
            out.append(values)
    return out


def _in_literal(line: str, value: str) -> bool:
    return any(value in m.group("body") for m in _STRING.finditer(line))


def mask_secrets(code: str, known: Iterable[str] = ()) -> str:
    """``code`` with every detected secret (and every spelling of a value in ``known``) replaced by ***."""
    pattern = known_pattern(known)
    lines = [pattern.sub(MASK, line) if pattern is not None else line for line in code.splitlines(keepends=True)]
    found = iter(_hits([line for line in lines if line.strip()]))
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        for value in sorted(set(next(found)), key=len, reverse=True):
            literal = next((m for m in _STRING.finditer(line) if value in m.group("body")), None)
            if literal is not None and len(value) < 8:  # a detector reported a token's prefix
                q = literal.group("q")
                line = line[: literal.start()] + q + MASK + q + line[literal.end() :]
            else:
                line = line.replace(value, MASK)
        out.append(line)
    return "".join(out)
