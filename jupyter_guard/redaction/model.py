"""Plain data the redaction core hands out: findings, reports and its errors. Never values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import GuardError


class RedactionError(GuardError):
    """Redaction cannot be done as asked (bad rule, missing key, unknown model).

    Messages name the column, rule or setting, never a data value.
    """


class KeyRequired(RedactionError):
    """A rule needs key material that was not given (`hash` without a pseudonym key,
    `encrypt` without the stewards' public key). Nothing is redacted unkeyed."""


@dataclass(frozen=True, order=True)
class Finding:
    """One detected PII span: ``text[start:end]`` is of ``entity_type``. Carries no value."""

    entity_type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict:
        return {"entity_type": self.entity_type, "start": self.start, "end": self.end, "score": self.score}


@dataclass
class RedactionReport:
    """What a redaction did, for the audit record. Counts and names only, never values.

    ``columns``: column -> rule applied (``mask``, ``replace``, ``hash``, ``encrypt``, ``scan``,
    ``drop``, ``keep``); ``entity_counts``: entity -> cells (column rules) or spans (``scan``)
    redacted; ``cells``: cells a rule other than ``keep`` applied to; ``rows``: rows of the
    frame; ``missing_columns``: columns named by the rules but absent from the frame (ignored);
    ``wrapped_keys``: key id -> the per-call AES data key wrapped with RSA-OAEP under the
    stewards' public key (useless without their private key; needed to decrypt ``encrypt``
    tokens, so it belongs in the audit record).
    """

    columns: dict[str, str] = field(default_factory=dict)
    entity_counts: dict[str, int] = field(default_factory=dict)
    cells: int = 0
    rows: int = 0
    missing_columns: list[str] = field(default_factory=list)
    wrapped_keys: dict[str, str] = field(default_factory=dict)

    def count(self, entity: str, n: int) -> None:
        if n:
            self.entity_counts[entity] = self.entity_counts.get(entity, 0) + int(n)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["entity_counts"] = dict(sorted(self.entity_counts.items()))
        return d
