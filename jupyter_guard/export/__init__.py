"""Notebook export: redaction of a notebook's outputs before it leaves (server, nbconvert, CLI).

The engine imports no web framework; the server's gates, the nbconvert preprocessor
(:mod:`jupyter_guard.nbconvert`) and tests call the same :func:`redact_notebook`, so the same
notebook and plan give the same bytes everywhere.
"""

from __future__ import annotations

from .notebook import (
    GUARD_METADATA_KEY,
    ExportError,
    ExportPlan,
    ExportReport,
    ScanCache,
    dumps_notebook,
    load_notebook,
    redact_notebook,
    redact_output,
)

__all__ = [
    "GUARD_METADATA_KEY",
    "ExportError",
    "ExportPlan",
    "ExportReport",
    "ScanCache",
    "dumps_notebook",
    "load_notebook",
    "redact_notebook",
    "redact_output",
]
