"""How a notebook may leave: its sensitivity, the policy's answer for it, and the redaction served.

The server's gates (``jupyter_guard.server.gates``) and the export review route call this; it
imports no web framework. The sensitivity comes from the audit log (what the notebook's
kernels read) plus a scan of its outputs (:mod:`jupyter_guard.sensitivity`); the decision is
the governor's (one Request naming every dataset the notebook holds); the scan is done once
per notebook content (:class:`ScanCache`), whether the notebook is previewed, downloaded or
exported in seven formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..catalog import Dataset, Label
from ..governor import Governor, Outcome, Request
from ..policy import DENY, JUSTIFY, REDACT
from ..sensitivity import PII_DATASET, audit_records, notebook_sensitivity
from .notebook import ExportPlan, ScanCache, redact_notebook


@dataclass(frozen=True)
class ExportSettings:
    """The admin's export settings (c.GuardApp.pii_label, export_denied_cells, export_max_output_bytes)."""

    pii_label: str | None = "confidential"
    denied_cells: str = "refuse"  # refuse | block
    max_output_bytes: int = 10_000_000
    scan_sources: bool = True  # PII written in cell sources is redacted (and counts) too


@dataclass
class Assessment:
    """What one export/download of one notebook does (names and counts, never values)."""

    path: str | None
    action: str
    fmt: str | None
    sensitivity: dict
    outcome: Outcome
    blocked_cells: frozenset[str] = frozenset()
    known_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def effect(self) -> str:
        """allow (served as is), redact (served redacted) or deny (refused)."""
        if not self.outcome.permitted:
            return DENY
        return REDACT if self.outcome.effect == REDACT else "allow"

    @property
    def governed(self) -> bool:
        return self.sensitivity.get("label") is not None

    @property
    def needs_justification(self) -> bool:
        refused = [d for d in self.outcome.decisions if not d.permitted]
        return bool(refused) and all(d.effect == JUSTIFY for d in refused)

    @property
    def message(self) -> str:
        if self.outcome.permitted:
            return ""
        what = f"{self.path} as {self.fmt}" if self.fmt else str(self.path or "this notebook")
        verb = "Export" if self.action == "export" else "Download"
        return f"{verb} of {what} refused: {self.outcome.message()}"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "action": self.action,
            "format": self.fmt,
            "effect": self.effect,
            "permitted": self.outcome.permitted,
            "needs_justification": self.needs_justification,
            "purpose": self.outcome.request.purpose,
            "message": self.message or None,
            "label": self.sensitivity.get("label"),
            "datasets": self.sensitivity.get("datasets", []),
            "pii_in_outputs": self.sensitivity.get("pii_in_outputs", {}),
            "blocked_cells": sorted(self.blocked_cells),
            "decisions": [
                {k: d.to_dict()[k] for k in ("dataset", "label", "effect", "permitted", "reasons", "rule", "ask")}
                for d in self.outcome.decisions
            ],
        }

    def details(self, report: dict | None) -> dict:
        """What the export's audit record says beside the decision (counts, never values)."""
        sens = self.sensitivity
        return {
            "format": self.fmt,
            "datasets": [d["dataset"] for d in sens["datasets"]],
            "pii_in_outputs": sens["pii_in_outputs"],
            "blocked_cells": len(self.blocked_cells),
            "redaction": report or {},
        }


class NotebookExports:
    """Sensitivity, assessment and redaction of notebooks for one governor (blocking calls)."""

    def __init__(self, governor: Governor, settings: ExportSettings, *, detector: Any = None):
        self.governor = governor
        self.settings = settings
        self.scans = ScanCache(detector)

    def rank(self, label: str) -> int:
        found = self.governor.catalog.label(label)
        return found.rank if found else 10**6  # a label the catalog forgot ranks highest (safe side)

    def pii_label(self) -> str | None:
        if not self.settings.pii_label:
            return None
        catalog = self.governor.catalog
        if catalog.label(self.settings.pii_label) is None:
            labels = sorted(catalog.labels, key=lambda lab: lab.rank)
            return labels[-1].name if labels else None  # a misspelt pii_label errs on the safe side
        return self.settings.pii_label

    def _plan(self, *, note: str, blocked=frozenset(), drop_unscannable: bool = False, known=()) -> ExportPlan:
        return ExportPlan(policy_note=note, blocked_cells=blocked, drop_unscannable=drop_unscannable, scan=True,
                          known_secrets=tuple(known), max_output_bytes=self.settings.max_output_bytes,
                          scan_sources=self.settings.scan_sources)

    def sensitivity(self, path: str | None, nb: Any, known_secrets=()) -> tuple[dict, Any]:
        """A notebook's sensitivity (audit log + output scan) and its scanned copy."""
        records = audit_records(self.governor.audit, path) if path else []
        scanned, report = redact_notebook(nb, self._plan(note="jupyter_guard scan", known=known_secrets),
                                          cache=self.scans)
        pii = report.entity_counts
        return notebook_sensitivity(path or "", records, self.rank, pii, self.pii_label()), scanned

    def _dataset(self, name: str, label: str) -> Dataset:
        catalog = self.governor.catalog
        ds = catalog.datasets.get(name)
        if ds is not None:
            return ds
        return Dataset(name=name, label=catalog.label(label) or Label(label, 10**6))

    def assess(self, who: Any, path: str | None, nb: Any, action: str, fmt: str | None, *,
               justification: str | None = None, purpose: str | None = None,
               known_secrets: tuple[str, ...] = ()) -> Assessment:
        """Decide one export/download of a notebook without recording it."""
        sens, _ = self.sensitivity(path, nb, known_secrets)
        datasets: list[Dataset | None] = [self._dataset(d["dataset"], d["label"]) for d in sens["datasets"]]
        if sens["pii_label"]:
            datasets.append(Dataset(name=PII_DATASET, label=self.governor.catalog.label(sens["pii_label"])))
        req = Request(who, action, target=path or "(notebook in the request body)", datasets=tuple(datasets) or None,
                      purpose=purpose, justification=justification, event_type=action, always_record=True,
                      context={"notebook": path})
        outcome = self.governor.assess(req)
        a = Assessment(path, action, fmt, sens, outcome, known_secrets=known_secrets)
        refused = [d for d in outcome.decisions if not d.permitted]
        if refused and self.settings.denied_cells == "block" and action == "export":
            # block mode: cells that read the refused datasets lose their outputs, if every such
            # read is pinned to a cell; PII found in outputs is never "blocked", only redacted
            names = {d.dataset for d in refused}
            if names.isdisjoint(sens["unattributed"]) and PII_DATASET not in names and None not in names:
                a.blocked_cells = frozenset(c for c, reads in sens["cell_reads"].items()
                                            if any(r["dataset"] in names for r in reads))
                a.outcome = outcome.but(REDACT, f"outputs of {len(a.blocked_cells)} cell(s) withheld")
        elif not outcome.permitted:
            a.outcome = outcome.but(DENY)  # an export is served or refused: a missing reason refuses too
        elif outcome.effect != REDACT and known_secrets and outcome.governed:
            a.outcome = outcome.but(REDACT, "secrets handed to its kernels are masked")
        return a

    def redact(self, a: Assessment, nb: Any) -> tuple[Any, dict]:
        """The notebook as served for an assessment that redacts, and what was done."""
        plan = self._plan(note=self.policy_note(a), blocked=a.blocked_cells, drop_unscannable=a.governed,
                          known=a.known_secrets)
        new_nb, report = redact_notebook(nb, plan, cache=self.scans)
        return new_nb, report.to_dict()

    @staticmethod
    def policy_note(a: Assessment) -> str:
        rules = sorted({d.rule for d in a.outcome.decisions if d.rule})
        label = a.sensitivity.get("label") or "unlabelled"
        return (f"Redacted by jupyter_guard for {a.outcome.request.who.user} ({a.action}, {label} notebook; "
                f"policy rules: {', '.join(rules) or 'defaults'}).")

    async def record(self, a: Assessment, report: dict | None = None, refused_for: str | None = None) -> Outcome:
        """Record the export decision durably; Refused / Unrecorded as the governor answers."""
        outcome = a.outcome.but(DENY, refused_for) if refused_for else a.outcome
        return await self.governor.decide(outcome.request, outcome=outcome, details=a.details(report))
