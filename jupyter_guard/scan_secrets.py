"""Secret shapes in text for ``jupyter guard scan``: detect-secrets' detectors, offsets only.

detect-secrets (Yelp's maintained detector set) finds AWS / GitHub / Slack / Stripe / ... keys,
private-key blocks, JSON Web Tokens, passwords in URLs (``postgresql://user:pw@host``, its
"Basic Auth Credentials") and keyword assignments (``password = "..."``). Its two
high-entropy detectors fire on almost any word when run line by line, so — as in
:mod:`jupyter_guard.masking` — they count only for a quoted string literal of 20
characters or more.

A finding is ``(type, start, end)`` within the line: the detector's name prefixed
``SECRET:`` and where the secret is. Some detectors report only a token's prefix (``ghp`` of a
GitHub token); the span is then widened to the whole token. The value itself is never
returned, printed or logged.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

ENTROPY_MIN = 20
PREFIX = "SECRET:"
_STRING = re.compile(r"""(?P<q>['"])(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_\-+/=.]")
#: every detect-secrets detector needs one of these in a line: a token of 16+ characters (AWS,
#: GitHub, GitLab, JWT, Slack, Stripe, Twilio, ... keys; entropy strings count from 20),
#: Artifactory's shorter AKC/AP tokens, a URL with credentials, a keyword. A line without one is
#: not given to detect-secrets (~0.4 ms a line); tests/export/test_notebook_redaction.py checks
#: every secret shape it finds against this.
SECRET_HINT = re.compile(
    r"[A-Za-z0-9_\-+/=]{16,}|\bA(?:KC|P[0-9A-F])[A-Za-z0-9]{8,}|://|xox|pass|pwd|secret|token|key|auth|cred"
    r"|contrase|cloudant|BEGIN",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SecretFinding:
    entity_type: str
    start: int
    end: int


#: detect-secrets keeps its settings in globals that ``default_settings()`` clears and reloads:
#: two threads inside it at once corrupt them ("dictionary changed size during iteration"), so
#: every use of it in this package holds this lock
DETECT_SECRETS_LOCK = threading.RLock()


class SecretScanner:
    """Scans lines for secrets; use as a context manager (detect-secrets' settings are global)."""

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._scan_line = None

    def __enter__(self) -> SecretScanner:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(DETECT_SECRETS_LOCK)
        self._stack.enter_context(default_settings())
        self._scan_line = scan_line
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None

    def find(self, line: str) -> list[SecretFinding]:
        """The secrets in one line of text (no newlines), non-entropy detectors first."""
        if not line or not line.strip() or not SECRET_HINT.search(line):
            return []
        if self._scan_line is None:
            with self:
                return self.find(line)
        literals = [(m.start("body"), m.end("body")) for m in _STRING.finditer(line)]
        strong: list[SecretFinding] = []
        weak: list[SecretFinding] = []
        for hit in self._scan_line(line):
            value = hit.secret_value or ""
            if not value:
                continue
            entropy = "High Entropy" in hit.type
            if entropy and len(value) < ENTROPY_MIN:
                continue
            for start in _occurrences(line, value):
                end = _widen(line, start + len(value))
                if entropy and not any(a <= start and end <= b for a, b in literals):
                    continue
                (weak if entropy else strong).append(SecretFinding(PREFIX + hit.type, start, end))
        out = sorted(set(strong), key=lambda f: (f.start, f.end, f.entity_type))
        for f in sorted(set(weak), key=lambda f: (f.start, f.end, f.entity_type)):
            if not any(s.start < f.end and f.start < s.end for s in out):  # already found as a named shape
                out.append(f)
        return sorted(out, key=lambda f: (f.start, f.end, f.entity_type))


def _occurrences(line: str, value: str) -> Iterator[int]:
    start = line.find(value)
    while start >= 0:
        yield start
        start = line.find(value, start + 1)


def _widen(line: str, end: int) -> int:
    """Extend a span that stops inside a token (a detector reported only its prefix)."""
    n, stop = len(line), end
    if end == 0 or end >= n or not (_TOKEN_CHAR.match(line[end - 1]) and _TOKEN_CHAR.match(line[end])):
        return end
    while stop < n and _TOKEN_CHAR.match(line[stop]):
        stop += 1
    while stop > end and line[stop - 1] == ".":  # a full stop after the token is not part of it
        stop -= 1
    return stop
