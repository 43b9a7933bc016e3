"""The one place a governed decision is made: resolve -> policy -> durable audit append.

Used by the REST handlers, the CLI and the benchmarks; imports no web framework. A decision
is recorded before it is returned; when the record cannot be written the request fails
closed (GuardDenied), so no governed read is ever answered unaudited.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .audit import AuditEvent, AuditLog, AuditRecord
from .catalog import Catalog, Dataset, Resolution
from .catalog.loader import build_catalog, read_sections
from .errors import AuditError, CatalogError, GuardDenied, Problem
from .policy import DENY, Decision, Policy, Principal, build_policy

log = logging.getLogger(__name__)

#: request context that audit records carry (kernel/notebook/cell references, never data)
CONTEXT_FIELDS = ("kernel_id", "session_id", "notebook", "cell_id", "msg_id")


@dataclass(frozen=True)
class Governance:
    """A validated catalog and the policy read from the same directory."""

    catalog: Catalog
    policy: Policy


def load_governance(directory: str | os.PathLike, root_dir: str | os.PathLike) -> Governance:
    """Load catalog and policy together; raise CatalogError naming every problem's file:line."""
    problems: list[Problem] = []
    sections, files = read_sections(directory, problems)
    return _build(sections, problems, str(root_dir), str(directory), tuple(files))


def empty_governance(root_dir: str | os.PathLike) -> Governance:
    """No catalog configured: nothing is governed; the shipped default policy applies."""
    return _build([], [], str(root_dir))


def _build(sections, problems: list[Problem], root_dir: str, directory: str = "", files: tuple = ()) -> Governance:
    catalog = build_catalog(sections, root_dir, problems, directory, files)
    policy = build_policy(sections, catalog, problems)
    if problems:
        raise CatalogError(problems)
    return Governance(catalog, policy)


def catalog_fingerprint(directory: str | os.PathLike) -> tuple:
    """Cheap change detection for reloads: (path, mtime_ns, size) of every catalog file."""
    root = Path(directory)
    if not root.is_dir():
        return ()
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".yaml", ".yml"):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


class Governor:
    """Decides and records. Holds the current governance; `swap` replaces it atomically."""

    def __init__(self, governance: Governance, audit: AuditLog, extra_roles: Mapping | None = None):
        self.governance = governance
        self.audit = audit
        self.extra_roles = dict(extra_roles or {})
        #: called with each stored record (the server routes them to jupyter_events)
        self.on_record: list[Callable[[AuditRecord], None]] = []

    def record(self, event: AuditEvent) -> AuditRecord:
        """Append durably (blocking) and tell the listeners."""
        rec = self.audit.append(event)
        self._notify(rec)
        return rec

    async def record_async(self, event: AuditEvent) -> AuditRecord:
        rec = await self.audit.append_async(event)
        self._notify(rec)
        return rec

    def _notify(self, rec: AuditRecord) -> None:
        for listener in self.on_record:
            try:
                listener(rec)
            except Exception:  # a broken event sink must not undo a stored record
                log.exception("jupyter_guard: audit listener failed for record %d", rec.seq)

    @property
    def catalog(self) -> Catalog:
        return self.governance.catalog

    @property
    def policy(self) -> Policy:
        return self.governance.policy

    def swap(self, governance: Governance) -> None:
        self.governance = governance

    def principal(self, user: str, groups=()) -> Principal:
        return self.policy.principal(user, groups, self.extra_roles)

    def evaluate(
        self,
        who: Principal,
        target: str | os.PathLike,
        action: str = "read",
        *,
        kind: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
    ) -> tuple[Resolution, Decision]:
        """Resolve and decide without recording (for previews such as the catalog listing)."""
        gov = self.governance  # one snapshot, even if a reload swaps it meanwhile
        res = gov.catalog.resolve(target, kind)
        decision = gov.policy.decide(
            who, res.dataset, action, target=res.target, purpose=purpose, justification=justification
        )
        return res, decision

    def _event(self, decision: Decision, context: Mapping | None) -> AuditEvent:
        context = context or {}
        details = {"rule": decision.rule, "permitted": decision.permitted}
        details.update(context.get("details") or {})
        return AuditEvent(
            event_type="decision",
            user=decision.user,
            action=decision.action,
            target=decision.target,
            dataset=decision.dataset,
            label=decision.label,
            decision=decision.effect,
            reasons=tuple(decision.reasons),
            purpose=decision.purpose,
            justification=decision.justification,
            details=details,
            **{k: context.get(k) for k in CONTEXT_FIELDS},
        )

    def decide(self, who: Principal, target, action: str = "read", *, context: Mapping | None = None, **kw) -> tuple[Decision, AuditRecord | None]:
        """Decide and durably record (blocking). Fails closed if the record cannot be written.

        Permitted reads of ungoverned data are not recorded (record is None): the log is about
        governed data, and a kernel reads many ungoverned files.
        """
        _, decision = self.evaluate(who, target, action, **kw)
        if not _worth_recording(decision):
            return decision, None
        try:
            record = self.record(self._event(decision, context))
        except AuditError as e:
            raise GuardDenied(_unaudited(decision, e), decision=_as_denied(decision, e)) from e
        return decision, record

    async def decide_async(self, who: Principal, target, action: str = "read", *, context: Mapping | None = None, **kw) -> tuple[Decision, AuditRecord | None]:
        """Like `decide`, awaiting the group commit instead of blocking the event loop."""
        _, decision = self.evaluate(who, target, action, **kw)
        if not _worth_recording(decision):
            return decision, None
        try:
            record = await self.record_async(self._event(decision, context))
        except AuditError as e:
            raise GuardDenied(_unaudited(decision, e), decision=_as_denied(decision, e)) from e
        return decision, record


def discoverer(policy: Policy, who: Principal, *, steward: bool) -> Callable[[Dataset], bool]:
    """Whether ``who`` may know that a dataset (or a source's ``as_dataset()``) exists.

    Stewards see everything; everyone else needs the policy's ``discover`` action. Memoised
    per dataset name and label, so one listing or one batch of paths asks the policy once each.
    """
    seen: dict[tuple[str, str], bool] = {}

    def visible(ds: Dataset) -> bool:
        if steward:
            return True
        key = (ds.name, ds.label.name)
        if key not in seen:
            seen[key] = policy.decide(who, ds, "discover").permitted
        return seen[key]

    return visible


def _worth_recording(decision: Decision) -> bool:
    """Governed data and every refusal are recorded; a permitted ungoverned read is not."""
    return decision.dataset is not None or not decision.permitted


def _unaudited(decision: Decision, error: Exception) -> str:
    return (
        f"{decision.user} may not {decision.action} {decision.target}: the audit log cannot record "
        f"this decision ({error}), and governed access is never granted unaudited. "
        "Tell your JupyterHub admin; the data itself is unchanged."
    )


def _as_denied(decision: Decision, error: Exception) -> Decision:
    return replace(decision, effect=DENY, permitted=False, reasons=(f"audit unavailable: {error}",))
