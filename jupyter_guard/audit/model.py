"""What an audit record holds.

An :class:`AuditEvent` says what happened: who, which action on which target, under which
decision and why, from which kernel, notebook and cell. It never holds data values: ``details``
carries counts, column names, rule names, code hashes and the like.

An :class:`AuditRecord` is an event after the log sealed it: its sequence number, the time it
was sealed, and its place in the HMAC chain (``prev_mac`` and ``mac``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "EVENT_FIELDS",
    "INDEX_FIELDS",
    "AuditEvent",
    "AuditQuery",
    "AuditRecord",
    "format_time",
    "parse_time",
]


@dataclass(frozen=True)
class AuditEvent:
    """What happened. Never data values."""

    event_type: str
    user: str | None = None
    action: str | None = None
    target: str | None = None
    dataset: str | None = None
    label: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    purpose: str | None = None
    justification: str | None = None
    kernel_id: str | None = None
    session_id: str | None = None
    notebook: str | None = None
    cell_id: str | None = None
    msg_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.event_type, str) or not self.event_type:
            raise ValueError("an audit event needs a non-empty event_type")
        if not isinstance(self.reasons, tuple):
            if isinstance(self.reasons, str):
                raise TypeError("AuditEvent.reasons is a sequence of strings, not one string")
            object.__setattr__(self, "reasons", tuple(self.reasons))
        if not all(isinstance(r, str) for r in self.reasons):
            raise TypeError("AuditEvent.reasons must be strings")
        for name in _OPTIONAL_STR_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"AuditEvent.{name} must be a str or None")
        if not isinstance(self.details, Mapping):
            raise TypeError("AuditEvent.details must be a mapping")

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-ready (``reasons`` as a list, ``details`` as a plain dict)."""
        out = {name: getattr(self, name) for name in EVENT_FIELDS}
        out["reasons"] = list(self.reasons)
        out["details"] = dict(self.details)
        return out


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AuditEvent))
_OPTIONAL_STR_FIELDS = tuple(
    n for n in EVENT_FIELDS if n not in ("event_type", "reasons", "details")
)

#: Event fields a store keeps in their own (indexed) columns for queries. Verification checks
#: that these columns equal the sealed payload, so an edited column is detected.
INDEX_FIELDS: tuple[str, ...] = (
    "event_type",
    "user",
    "action",
    "dataset",
    "label",
    "decision",
    "notebook",
)


@dataclass(frozen=True)
class AuditRecord:
    """An event sealed into the chain."""

    seq: int
    time: str  # ISO-8601 UTC with microseconds and 'Z', e.g. 2024-05-01T12:00:00.000001Z
    event: AuditEvent
    prev_mac: str  # hex
    mac: str  # hex

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready: seq, time, every event field, prev_mac, mac."""
        out: dict[str, Any] = {"seq": self.seq, "time": self.time}
        out.update(self.event.to_dict())
        out["prev_mac"] = self.prev_mac
        out["mac"] = self.mac
        return out


@dataclass
class AuditQuery:
    """A filter over the log. All given filters must match (AND).

    ``after_seq`` is a cursor: with ``descending=False`` the result starts after that seq, with
    ``descending=True`` before it, so passing the last seq of one page gives the next page.
    ``since`` is inclusive, ``until`` exclusive. Strings are ISO-8601; naive times are UTC.
    """

    user: str | None = None
    dataset: str | None = None
    label: str | None = None
    decision: str | None = None
    notebook: str | None = None
    event_type: str | None = None
    action: str | None = None
    since: str | datetime | None = None
    until: str | datetime | None = None
    after_seq: int | None = None
    limit: int | None = 1000  # None: no limit (page with after_seq instead for big results)
    descending: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("AuditQuery.limit must be >= 0 or None")


def format_time(when: datetime) -> str:
    """The one time format of the log: UTC, microseconds, 'Z' (sorts as text)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | datetime) -> str:
    """Normalise a query bound (ISO-8601 string or datetime) to the log's time format."""
    if isinstance(value, datetime):
        return format_time(value)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    return format_time(parsed)
