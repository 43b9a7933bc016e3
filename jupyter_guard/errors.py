"""Errors users and admins see. Messages name what and where; never data values or secrets."""

from __future__ import annotations

from dataclasses import dataclass


class GuardError(Exception):
    """Base class of every jupyter_guard error."""


class GuardDenied(GuardError, PermissionError):
    """A governed action was refused. The message says who, what, why and who to ask."""

    def __init__(self, message: str, *, decision: object | None = None):
        super().__init__(message)
        self.decision = decision


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a catalog or policy file, with where it is."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class CatalogError(GuardError):
    """The catalog or policy is invalid. Carries every problem found, each with file and line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in the catalog:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class AuditError(GuardError):
    """Something is wrong with the audit log."""


class AuditUnavailable(AuditError):
    """The audit store cannot be written or read (locked, read-only, deleted, corrupt, full).

    The message names the store's path and the cause. A governed action whose audit record
    raised this must fail (fail closed): the record was not written.
    """


class AuditKeyError(AuditError):
    """The audit key is missing, unreadable, too open, or does not match the log."""


class CredentialError(GuardError):
    """A secret provider cannot be used (no backend, would prompt, read-only, bad name)."""


class GovernanceRefusal(GuardDenied):
    """A governed request that was not granted, as every server route answers it.

    ``status`` is the HTTP answer (403: the policy refused, and the refusal is on the record;
    503: the audit log cannot record, so nothing is done unaudited; 502: a permitted request
    whose secret could not be looked up). ``body`` is the JSON the route sends: the decision
    (who, what, why, whom to ask) plus ``message``. Raised only by the governor.
    """

    status = 403

    def __init__(self, message: str, *, body: dict, decision: object | None = None):
        super().__init__(message, decision=decision)
        self.body = {**body, "message": message}


class Refused(GovernanceRefusal):
    """The policy refused; the refusal was recorded before this was raised (``outcome``: the
    governor's Outcome, with its audit record)."""

    def __init__(self, message: str, *, body: dict, outcome: object, status: int = 403):
        super().__init__(message, body=body, decision=getattr(outcome, "decision", None))
        self.outcome = outcome
        self.status = status


class Unrecorded(GovernanceRefusal):
    """The audit log cannot record this, so it is refused (fail closed)."""

    status = 503
