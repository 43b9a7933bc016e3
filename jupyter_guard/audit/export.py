"""Stream audit records out for compliance: JSON Lines or CSV.

JSON Lines is exact: one ``AuditRecord.to_dict()`` per line. CSV has one column per field;
``reasons`` and ``details`` are JSON in their cells. A CSV cell that starts with ``=``, ``+``,
``-``, ``@``, tab or carriage return is prefixed with ``'`` so a spreadsheet does not run it
as a formula (notebook names and targets come from users); use JSON Lines for exact values.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from .model import EVENT_FIELDS, AuditRecord

__all__ = ["CSV_COLUMNS", "FORMATS", "export_records"]

FORMATS = ("jsonl", "csv")
CSV_COLUMNS: tuple[str, ...] = ("seq", "time", *EVENT_FIELDS, "prev_mac", "mac")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_records(records: Iterable[AuditRecord], fmt: str, out: TextIO) -> int:
    """Write ``records`` to ``out`` as they come (streaming); return how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    n = 0
    if fmt == "jsonl":
        for rec in records:
            out.write(json.dumps(rec.to_dict(), sort_keys=True, ensure_ascii=False))
            out.write("\n")
            n += 1
        return n
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rec in records:
        d = rec.to_dict()
        writer.writerow([_csv_cell(d[c]) for c in CSV_COLUMNS])
        n += 1
    return n
