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

__all__ = ["CSV_COLUMNS", "FORMATS", "MEDIA_TYPES", "RecordWriter", "export_records"]

FORMATS = ("jsonl", "csv")
#: what to call each format over HTTP (the text is UTF-8)
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
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


class RecordWriter:
    """Writes records to ``out`` in one format, fed in any number of chunks.

    The CSV header is written at once (unless ``header=False``: a later chunk of the same
    file), so an export of nothing is still a valid file with its columns. ``export_records`` (the CLI) and the server's streamed export both write
    through this class, so their bytes are the same for the same records.
    """

    def __init__(self, fmt: str, out: TextIO, *, header: bool = True):
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.fmt, self.out = fmt, out
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            if header:
                self._csv.writerow(CSV_COLUMNS)

    def write(self, records: Iterable[AuditRecord]) -> int:
        """Write ``records`` as they come; return how many were written."""
        n = 0
        for rec in records:
            d = rec.to_dict()
            if self._csv is None:
                self.out.write(json.dumps(d, sort_keys=True, ensure_ascii=False))
                self.out.write("\n")
            else:
                self._csv.writerow([_csv_cell(d[c]) for c in CSV_COLUMNS])
            n += 1
        return n


def export_records(records: Iterable[AuditRecord], fmt: str, out: TextIO) -> int:
    """Write ``records`` to ``out`` as they come (streaming); return how many were written."""
    return RecordWriter(fmt, out).write(records)
