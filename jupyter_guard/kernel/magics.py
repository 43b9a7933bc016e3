"""``%guard``: declare a purpose, give a justification, see what the guard is doing.

    %guard purpose NAME        declare the purpose of this session (stamped on every event)
    %guard purpose             show it, and the purposes the catalog knows
    %guard purpose --clear     withdraw it
    %guard justify TEXT        a reason for the next read that needs one (used once)
    %guard status              is the guard on, can it reach the server, what it watches
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import GuardDenied
from .client import ENV_KERNEL, ENV_URL
from .guard import governed

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
USAGE = __doc__.split("\n", 2)[2].rstrip()


def guard_magic(guard: Any, hooks: Any) -> Any:
    """The ``%guard`` line magic, bound to one Guard."""
    from IPython.core.error import UsageError

    def guard_(line: str) -> None:
        words = line.strip().split(None, 1)
        if not words:
            print("Usage:\n" + USAGE)
            return
        command, rest = words[0], (words[1].strip() if len(words) > 1 else "")
        if command == "purpose":
            _purpose(guard, rest, UsageError)
        elif command == "justify":
            _justify(guard, rest, UsageError)
        elif command == "status":
            _status(guard, hooks)
        else:
            raise UsageError(f"unknown %guard command {command!r}.\nUsage:\n{USAGE}")

    guard_.__doc__ = __doc__
    return guard_


def _purpose(guard: Any, rest: str, UsageError: type) -> None:
    try:
        if not rest:
            with governed():
                reply = guard.client.purpose()
            current = guard.purpose = reply.get("purpose")  # the toolbar may have changed it
            print(f"Purpose of this session: {current or 'none declared'}")
            print("Purposes the catalog knows: " + (", ".join(reply.get("known") or []) or "none"))
            if not current:
                print("Declare one with: %guard purpose NAME")
            return
        name = None if rest in ("--clear", "-c", "none") else _unquote(rest)
        if name is not None and not NAME_RE.match(name):
            raise UsageError("a purpose is a name: letters, digits, '_', '.', '-' (for example treatment-research)")
        with governed():
            reply = guard.client.purpose(name, set_it=True)
    except GuardDenied as e:
        raise UsageError(f"the purpose could not be set or read: {e}") from None
    guard.purpose = reply.get("purpose")
    guard.reset()  # decisions cached under the old purpose no longer apply
    known = reply.get("known") or []
    if guard.purpose is None:
        print("Purpose withdrawn: reads that need a purpose will be refused until you declare one.")
        return
    print(f"Purpose of this session: {guard.purpose}. It is recorded with every decision and audit event.")
    if known and guard.purpose not in known:
        print(f"Note: the catalog knows no dataset or rule for {guard.purpose!r}; known purposes: {', '.join(known)}.")


def _justify(guard: Any, rest: str, UsageError: type) -> None:
    text = _unquote(rest)
    if not text:
        pending = guard.justification
        print(f"Pending justification: {pending!r}" if pending else "No justification pending.")
        print('Give one with: %guard justify "why you need this data"')
        return
    guard.justification = text
    print("Justification stored. It is sent with the next read that needs one, recorded with that "
          "decision for the data steward, and then used up.")


def _status(guard: Any, hooks: Any) -> None:
    url = os.environ.get(ENV_URL) or "(not set)"
    try:
        with governed():
            reply = guard.client.purpose()
        server = "reachable"
        guard.purpose = reply.get("purpose")
        purpose = guard.purpose or "none declared"
    except GuardDenied as e:
        server, purpose = f"NOT reachable: {e}", guard.purpose or "none declared"
    rows = [
        ("guard", "on" if hooks.active else "off (unloaded): executions are recorded as unguarded"),
        ("server", f"{url} ({server})"),
        ("kernel", os.environ.get(ENV_KERNEL) or "(not set)"),
        ("purpose", purpose),
        ("justification", "pending" if guard.justification else "none pending"),
        ("open()", "checked through an audit hook" if hooks.active else "not checked"),
        *((mod, state) for mod, state in hooks.status().items()),
        ("redaction", f"pattern tier + NER model {guard.ner_model}" if guard.ner_model
         else "pattern tier (the admin sets c.GuardApp.ner_model for names and places)"),
        ("this session", ", ".join(f"{n} {k}" for k, n in sorted(guard.totals.items())) or "no governed reads yet"),
    ]
    width = max(len(k) for k, _ in rows)
    print("jupyter_guard kernel guard")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text
