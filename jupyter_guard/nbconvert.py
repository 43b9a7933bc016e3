"""``jupyter nbconvert`` with jupyter_guard's export redaction: the same result as the server.

    jupyter nbconvert --to html \\
        --Exporter.preprocessors='["jupyter_guard.nbconvert.GuardPreprocessor"]' analysis.ipynb

:class:`GuardPreprocessor` runs :func:`jupyter_guard.export.redact_notebook`. Its plan is
the one the server wrote into the notebook (``metadata["jupyter_guard"]["export_plan"]``) when
there is one -- then the output equals the server's export byte for byte -- otherwise the
traits below (``--GuardPreprocessor.policy_note=...``, ``--GuardPreprocessor.blocked_cells=...``).
Blocked cells and known secrets given as traits are added to the notebook's plan.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Integer, List, Unicode

from .export import GUARD_METADATA_KEY, ExportPlan, redact_notebook


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
        resources[GUARD_METADATA_KEY] = report.to_dict()
        return new, resources
