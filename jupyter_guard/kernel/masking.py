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

The values and their spellings are the core's (:class:`jupyter_guard.masking.SecretMasker`),
the same the server masks on the kernel channel, in cell records and in exports. Secrets are
remembered for the life of the kernel process (a rotated-out password stays masked); they are
never written anywhere.

This is a guardrail, not a boundary (docs/threat-model.md): user code can unwrap it, or
print a secret one character at a time. The server masks the same values again.
"""

from __future__ import annotations

from typing import Any

from ..masking import SecretMasker

_ORIGINAL = "__jupyter_guard_unmasked__"


class SessionMasker(SecretMasker):
    """The secrets of this kernel and the wrapper that masks them in outgoing messages."""

    _session: Any = None

    def register(self, secrets: Any, session: Any = None) -> None:
        """Mask these values from now on (and wrap ``session`` if not yet done)."""
        self.add(secrets)
        if session is not None and self.active:
            self._wrap(session)

    def mask_text(self, text: str) -> str:
        return self.text(text)

    def _wrap(self, session: Any) -> None:
        if self._session is session and getattr(vars(session).get("serialize"), _ORIGINAL, None) is not None:
            return
        original = session.serialize  # a bound method of the Session class
        masker = self

        def serialize(msg: Any, ident: Any = None) -> Any:
            if masker.active and isinstance(msg, dict):
                msg = masker.mask_message(msg)
            return original(msg, ident)

        setattr(serialize, _ORIGINAL, original)
        session.serialize = serialize
        self._session = session

    def mask_message(self, msg: dict) -> dict:
        """A copy of one Jupyter message with its content and metadata masked."""
        content, metadata = msg.get("content"), msg.get("metadata")
        new_content, new_metadata = self.obj(content), self.obj(metadata)
        if new_content is content and new_metadata is metadata:
            return msg
        return {**msg, "content": new_content, "metadata": new_metadata}

    def unwrap(self) -> None:
        """Remove the wrapper (tests). Secrets stay registered."""
        session = self._session
        if session is not None and getattr(vars(session).get("serialize"), _ORIGINAL, None) is not None:
            del session.serialize
        self._session = None

    def clear(self) -> None:
        """Forget every secret and unwrap (tests only)."""
        self.unwrap()
        self.__init__()


#: the kernel process's masker (module state: survives %reload_ext of the guard)
MASKER = SessionMasker()
