"""Mask secrets in code text before it is stored (audit records keep code, never credentials).

Detection is detect-secrets' (a maintained set of detectors: basic-auth URLs, AWS/GitHub/
Slack/Stripe keys, JWTs, private keys, keyword assignments such as ``password = "..."``).
Its entropy detectors fire on any long-ish token when run line by line, so they count only
for string literals of 20 characters or more. A short hit (under 8 characters) inside a string
literal masks the whole literal, because detectors sometimes report only a token's prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_STRING = re.compile(r"""(?P<q>['"])(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_ENTROPY_MIN = 20


def _hits(line: str) -> Iterable[str]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    with default_settings():
        for found in scan_line(line):
            value = found.secret_value or ""
            if not value:
                continue
            if "High Entropy" in found.type and (len(value) < _ENTROPY_MIN or not _in_literal(line, value)):
                continue
            yield value


def _in_literal(line: str, value: str) -> bool:
    return any(value in m.group("body") for m in _STRING.finditer(line))


def mask_secrets(code: str, known: Iterable[str] = ()) -> str:
    """``code`` with every detected secret (and every value in ``known``) replaced by ***."""
    known = [k for k in known if k]
    out = []
    for line in code.splitlines(keepends=True):
        for value in known:
            line = line.replace(value, MASK)
        if not line.strip():
            out.append(line)
            continue
        for value in sorted(set(_hits(line)), key=len, reverse=True):
            literal = next((m for m in _STRING.finditer(line) if value in m.group("body")), None)
            if literal is not None and len(value) < 8:  # a detector reported a token's prefix
                q = literal.group("q")
                line = line[: literal.start()] + q + MASK + q + line[literal.end() :]
            else:
                line = line.replace(value, MASK)
        out.append(line)
    return "".join(out)
