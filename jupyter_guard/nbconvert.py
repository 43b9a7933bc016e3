"""``jupyter nbconvert`` with jupyter_guard's export redaction: the same result as the server.

    jupyter nbconvert --to html \\
        --Exporter.preprocessors='["jupyter_guard.nbconvert.GuardPreprocessor"]' analysis.ipynb

:class:`GuardPreprocessor` runs :func:`jupyter_guard.export.redact_notebook`. Its plan is
the one the server wrote into the notebook (``metadata["jupyter_guard"]["export_plan"]``) when
there is one -- then the output equals the server's export byte for byte -- otherwise the
traits below (``--GuardPreprocessor.policy_note=...``, ``--GuardPreprocessor.blocked_cells=...``).
Blocked cells and known secrets given as traits are added to the notebook's plan.

Each export is recorded in the audit log the server keeps (``c.GuardPreprocessor.audit_dir``,
by default the server's default) before nbconvert writes it. ``audit = "auto"`` (the default)
records when that log and its key are there and says loudly when they are not;
``"required"`` refuses an export it cannot record; ``"off"`` records nothing.
"""

from __future__ import annotations

import getpass
import os

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Enum, Integer, List, Unicode, default

from .errors import AuditError
from .export import GUARD_METADATA_KEY, ExportPlan, redact_notebook
from .paths import default_audit_db, default_audit_dir, default_key_file


class UnrecordedExport(AuditError):
    """``audit = "required"`` and the export could not be recorded: nothing is written."""


class GuardPreprocessor(Preprocessor):
    """Redacts outputs for export: PII and secrets replaced, unscannable outputs withheld."""

    enabled = Bool(True, help="Run this preprocessor (on by default once listed).").tag(config=True)
    policy_note = Unicode(
        "redacted by jupyter_guard (nbconvert preprocessor)",
        help="Stated in the export's first cell and metadata: which policy the redaction follows.",
    ).tag(config=True)
    blocked_cells = List(Unicode(), help="Cell ids whose outputs are withheld with a placeholder.").tag(config=True)
    drop_unscannable = Bool(True, help="Withhold images, PDFs, widgets and unknown MIME types.").tag(config=True)
    scan = Bool(True, help="Scan text outputs for PII (Presidio) and secrets (detect-secrets).").tag(config=True)
    known_secrets = List(Unicode(), help="Literal values masked as *** wherever they occur.").tag(config=True)
    max_output_bytes = Integer(10_000_000, help="A larger output is withheld, never exported unscanned.").tag(config=True)
    scan_sources = Bool(True, help="Also redact PII written in cell sources.").tag(config=True)
    ner_model = Unicode(None, allow_none=True,
                        help="Installed spaCy model for names and places (e.g. en_core_web_sm); default: patterns only.",
                        ).tag(config=True)
    audit = Enum(["auto", "required", "off"], "auto",
                 help="Record each export in the audit log: 'auto' when it is there (and warn when not), "
                      "'required' refuses an unrecorded export, 'off' never records.").tag(config=True)
    audit_dir = Unicode(help="As c.GuardApp.audit_dir: where the server keeps its log and key.").tag(config=True)
    audit_db = Unicode(None, allow_none=True, help="The SQLite audit log (default: <audit_dir>/audit.sqlite).").tag(config=True)
    audit_key_file = Unicode(None, allow_none=True, help="The audit key (default: <audit_dir>/audit.key).").tag(config=True)

    @default("audit_dir")
    def _default_audit_dir(self) -> str:
        return default_audit_dir()

    def plan_for(self, nb) -> ExportPlan:
        """The notebook's own plan (written by the server) if any, else the traits."""
        guard = nb.get("metadata", {}).get(GUARD_METADATA_KEY)
        stored = guard.get("export_plan") if isinstance(guard, dict) else None
        if isinstance(stored, dict):
            base = ExportPlan.from_metadata(stored)
            return ExportPlan.from_metadata(
                stored,
                blocked_cells=base.blocked_cells | frozenset(self.blocked_cells),
                known_secrets=tuple(self.known_secrets),
            )
        return ExportPlan(
            policy_note=self.policy_note,
            blocked_cells=frozenset(self.blocked_cells),
            drop_unscannable=self.drop_unscannable,
            scan=self.scan,
            known_secrets=tuple(self.known_secrets),
            max_output_bytes=self.max_output_bytes,
            scan_sources=self.scan_sources,
        )

    def preprocess(self, nb, resources):
        detector = None
        if self.ner_model:
            from .redaction import Detector

            detector = Detector(ner_model=self.ner_model)
        new, report = redact_notebook(nb, self.plan_for(nb), detector=detector)
        self.log.info("jupyter_guard: %d outputs scanned, %d withheld", report.outputs_scanned, report.outputs_removed)
        resources = dict(resources or {})
        resources[GUARD_METADATA_KEY] = {**report.to_dict(), "audit": self._record(nb, resources, report)}
        return new, resources

    def _record(self, nb, resources, report) -> dict:
        """Record the export before nbconvert writes it; say plainly when it is not recorded."""
        if self.audit == "off":
            return {"recorded": False, "why": "c.GuardPreprocessor.audit is 'off'"}
        from .governor import Governor, empty_governance

        meta = resources.get("metadata") or {}
        where = meta.get("path") or os.getcwd()
        notebook = os.path.join(where, meta["name"] + ".ipynb") if meta.get("name") else None
        guard = nb.get("metadata", {}).get(GUARD_METADATA_KEY)
        label = guard.get("sensitivity") if isinstance(guard, dict) else None
        db = self.audit_db or default_audit_db(self.audit_dir)
        try:
            from .audit.existing import open_existing_log

            log = open_existing_log(db, key_file=self.audit_key_file or default_key_file(self.audit_dir))
            try:
                rec = Governor(empty_governance(where), log).record_fact_blocking(
                    "export", user=getpass.getuser(), action="export", target=notebook, notebook=notebook,
                    label=label if isinstance(label, str) else None, decision="redact",
                    details={"via": "nbconvert", "outputs_scanned": report.outputs_scanned,
                             "outputs_withheld": report.outputs_removed, "cells_blocked": report.cells_blocked,
                             "entities": dict(report.entity_counts), "secrets_masked": report.secrets_masked},
                )
            finally:
                log.close()
        except AuditError as e:
            why = str(e)
            if self.audit == "required":
                raise UnrecordedExport(f"jupyter_guard: the export of {notebook or 'this notebook'} is refused: it "
                                       f"cannot be recorded in the audit log ({why}), and "
                                       "c.GuardPreprocessor.audit is 'required'.") from e
            self.log.warning("jupyter_guard: this export is NOT recorded in an audit log (%s). Point "
                             "c.GuardPreprocessor.audit_dir at the server's audit directory, or set "
                             "c.GuardPreprocessor.audit='required' to refuse unrecorded exports.", why)
            return {"recorded": False, "why": why}
        self.log.info("jupyter_guard: export recorded in %s as record %d", db, rec.seq)
        return {"recorded": True, "seq": rec.seq, "db": db}
