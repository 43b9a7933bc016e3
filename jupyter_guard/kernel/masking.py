"""Kernel-side masking of the secrets the server handed to this kernel (defense in depth).

Every value :func:`jupyter_guard.connect` received from the server (a data source's password,
token, ...) is replaced by ``***`` in every message the kernel sends: streams (``print``,
tracebacks written to stderr, subprocess output), ``execute_result`` / ``display_data``
(every text MIME type: plain, HTML, Markdown, JSON), ``error`` tracebacks (``%xmode Verbose``
shows frame locals, which hold connection parameters), ``execute_reply`` (its error fields
and payloads), ``inspect_reply``, ``complete_reply`` and comm messages.

Where: the kernel's one :class:`jupyter_client.session.Session` serializes every outgoing
message in ``Session.serialize`` — the output streams, the display publisher, the display
hook, ``_showtraceback`` and the kernel's replies all call ``session.send``, which calls it.
Wrapping that one method on the kernel's session instance covers all of them with no
per-channel code. The wrapper is installed when the first secret is registered: a kernel
that never connected to a source pays nothing.

Spellings masked: the value itself, its URL-quoted forms (``render_as_string`` quotes
``@ : / %``; the server's template ``quote_plus``), and its ``repr`` / JSON / libpq-conninfo
escaped forms when they differ. Secrets are remembered
for the life of the kernel process (a rotated-out password stays masked); they are never
written anywhere.

This is a guardrail, not a boundary (docs/threat-model.md): user code can unwrap it, or
print a secret one character at a time. The server masks the same values again on the
kernel channel, in saved notebooks and in exports.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_ORIGINAL = "__jupyter_guard_unmasked__"


def spellings(secret: str) -> set[str]:
    """The forms in which ``secret`` may show up in text output."""
    out = {secret, quote(secret, safe=" +"), quote(secret, safe=""), quote_plus(secret)}
    out.add(repr(secret)[1:-1])
    out.add(json.dumps(secret)[1:-1])
    out.add(secret.replace("\\", "\\\\").replace("'", "\\'"))  # a libpq conninfo value (password='...')
    return {s for s in out if s}


class SecretMasker:
    """The secrets of this kernel and the wrapper that masks them in outgoing messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._bytes: tuple[bytes, ...] = ()
        self._session: Any = None

    # -- the registry ----------------------------------------------------------------------

    def register(self, secrets: Any, session: Any = None) -> None:
        """Mask these values from now on (and wrap ``session`` if not yet done)."""
        values = {s for s in (secrets or ()) if isinstance(s, str) and s.strip()}
        with self._lock:
            new = set()
            for value in values:
                new |= spellings(value)
            if new - self._values:
                self._values |= new
                ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
                self._bytes = tuple(v.encode("utf-8") for v in ordered)
            if session is not None and self._values:
                self._wrap(session)

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def __len__(self) -> int:
        return len(self._values)

    # -- masking ---------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def mask(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like: dicts, lists, strings, bytes) with secrets masked.

        Objects that hold no secret are returned as they are (no copy)."""
        pattern = self._pattern
        if pattern is None:
            return value
        return self._mask(value, pattern)

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
            out = bytes(value)
            for b in self._bytes:
                if b in out:
                    out = out.replace(b, MASK.encode())
            return out if out != value else value
        return value

    # -- the session wrapper ---------------------------------------------------------------

    def _wrap(self, session: Any) -> None:
        if self._session is session and getattr(vars(session).get("serialize"), _ORIGINAL, None) is not None:
            return
        original = session.serialize  # a bound method of the Session class
        masker = self

        def serialize(msg: Any, ident: Any = None) -> Any:
            if masker._pattern is not None and isinstance(msg, dict):
                msg = masker.mask_message(msg)
            return original(msg, ident)

        setattr(serialize, _ORIGINAL, original)
        session.serialize = serialize
        self._session = session

    def mask_message(self, msg: dict) -> dict:
        """A copy of one Jupyter message with its content and metadata masked."""
        content = msg.get("content")
        metadata = msg.get("metadata")
        new_content = self.mask(content)
        new_metadata = self.mask(metadata)
        if new_content is content and new_metadata is metadata:
            return msg
        out = dict(msg)
        out["content"] = new_content
        out["metadata"] = new_metadata
        return out

    def unwrap(self) -> None:
        """Remove the wrapper (tests). Secrets stay registered."""
        session = self._session
        if session is not None and getattr(vars(session).get("serialize"), _ORIGINAL, None) is not None:
            del session.serialize
        self._session = None

    def clear(self) -> None:
        """Forget every secret and unwrap (tests only)."""
        self.unwrap()
        with self._lock:
            self._values = set()
            self._pattern = None
            self._bytes = ()


#: the kernel process's masker (module state: survives %reload_ext of the guard)
MASKER = SecretMasker()
