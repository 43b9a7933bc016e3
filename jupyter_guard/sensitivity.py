"""How sensitive a notebook is: what the server saw its kernels read, plus what its outputs show.

The label comes from the AUDIT LOG (decision and cell_execution records whose ``notebook`` is
the notebook's path), never from the notebook's metadata, which its user can edit. A scan of
the outputs adds what the log cannot know (PII pasted in, printed from a literal, or left by a
kernel the server did not guard): PII found in outputs counts as data of ``pii_label``.

Limits: the log knows a notebook by the path its session had; a notebook copied or renamed
through the server keeps its history (``lineage`` records); one copied outside the server
(a shell ``cp``) starts with none, and only the output scan speaks for it. Imports no web framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .audit import AuditQuery

#: effects under which a read handed data to the kernel (justify is counted too: safe side)
HANDED_OVER = ("allow", "redact", "justify")
PII_DATASET = "pii-in-outputs"


def reads_from_log(records: Iterable[Any]) -> tuple[dict[str, str], dict[str, dict], set[str]]:
    """(dataset -> label, cell_id -> {dataset, label}, datasets read outside any known cell).

    Denied reads returned no data and do not count; everything else that named a dataset does.
    """
    datasets: dict[str, str] = {}
    cells: dict[str, list[dict]] = {}
    unattributed: set[str] = set()

    def note(dataset, label, effect, cell_id):
        if not dataset or not label or effect == "deny":
            return
        datasets[dataset] = label
        if cell_id:
            cells.setdefault(cell_id, []).append({"dataset": dataset, "label": label})
        else:
            unattributed.add(dataset)

    for rec in records:
        rec = getattr(rec, "event", rec)  # an AuditRecord holds its AuditEvent
        event_type = getattr(rec, "event_type", None)
        if event_type == "decision" and getattr(rec, "action", None) in ("read", "credential"):
            details = rec.details or {}
            if details.get("permitted") is False:
                continue
            note(rec.dataset, rec.label, rec.decision, rec.cell_id)
        elif event_type == "cell_execution":
            for d in (rec.details or {}).get("datasets") or ():
                if isinstance(d, Mapping) and d.get("action", "read") in ("read", "credential"):
                    note(d.get("dataset"), d.get("label"), d.get("effect"), rec.cell_id)
    return datasets, {c: _cells(v) for c, v in cells.items()}, unattributed


def _cells(entries: list[dict]) -> list[dict]:
    seen, out = set(), []
    for e in entries:
        key = (e["dataset"], e["label"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def notebook_sensitivity(
    path: str,
    records: Iterable[Any],
    rank: Callable[[str], int],
    pii_in_outputs: Mapping[str, int] | None = None,
    pii_label: str | None = None,
) -> dict:
    """The sensitivity of ``path`` from its audit records and the entity counts of an output scan.

    ``rank`` gives a label's rank (a label the catalog no longer knows should rank highest);
    ``pii_label`` is the label PII in outputs counts as (None: PII does not raise the label).
    """
    datasets, cells, unattributed = reads_from_log(records)
    pii = {k: int(v) for k, v in sorted((pii_in_outputs or {}).items()) if v}
    logged = max(datasets.values(), key=rank, default=None)
    # PII in outputs makes the notebook at least `pii_label`; it only counts where it raises the label
    raises = bool(pii and pii_label and (logged is None or rank(pii_label) > rank(logged)))
    label = pii_label if raises else logged
    return {
        "path": path,
        "label": label,
        "datasets": [{"dataset": d, "label": lab} for d, lab in sorted(datasets.items())],
        "cells": {c: max(v, key=lambda e: rank(e["label"])) for c, v in sorted(cells.items())},
        "cell_reads": cells,
        "unattributed": sorted(unattributed),
        "pii_in_outputs": pii,
        "pii_label": pii_label if raises else None,
    }


MAX_LINEAGE = 50  # copies of copies followed back at most this far


def audit_records(audit: Any, path: str) -> list:
    """Every record the log holds for a notebook path and for the notebooks it was copied or
    renamed from (``lineage`` records), so a copy keeps its history. Blocking."""
    out, todo, seen = [], [path], set()
    while todo and len(seen) < MAX_LINEAGE:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        records = list(audit.query(AuditQuery(notebook=current, limit=None)))
        out.extend(records)
        for rec in records:
            event = getattr(rec, "event", rec)
            if getattr(event, "event_type", None) == "lineage":
                source = (event.details or {}).get("from")
                if isinstance(source, str):
                    todo.append(source)
    return out


def display_copy(sensitivity: Mapping) -> dict:
    """What goes into ``metadata.jupyter_guard.sensitivity`` on save: for display, never trusted."""
    return {
        "label": sensitivity.get("label"),
        "datasets": [d["dataset"] for d in sensitivity.get("datasets", ())],
        "pii_in_outputs": dict(sensitivity.get("pii_in_outputs") or {}),
        "note": "display copy written on save; the server decides from its audit log, not from this",
    }
