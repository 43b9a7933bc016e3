"""Redacting pandas frames by the catalog's column rules, and free text by detection.

Column rules work on distinct values: each chunk of a column is factorized
(``pd.factorize``: integer codes + distinct values), the operator runs once per distinct
value, and ``take`` by code builds the column. ``replace`` needs no per-value work at all.
Rows are processed in chunks of ``chunk_rows`` so temporary memory stays bounded whatever
the frame's size; the output columns are written in place into one array per column.

Rules: ``mask``, ``replace`` (``<ENTITY>``), ``hash`` (keyed pseudonym), ``encrypt``
(reversible by stewards), ``scan`` (Presidio finds PII inside the text; each span becomes
``<ENTITY>``), ``drop``, ``keep``. NaN/None stay NaN; other non-strings are turned into
text first (integral floats without ``.0``, so 42 and 42.0 hash alike).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .model import RedactionError, RedactionReport
from .operators import (
    OPERATORS,
    GuardMask,
    HybridEncrypt,
    HybridEncryptor,
    Pseudonymize,
    check_key,
    load_public_key,
)

log = logging.getLogger(__name__)

COLUMN_RULES = ("mask", "replace", "hash", "encrypt", "scan", "drop", "keep")
FREE_TEXT = "FREE_TEXT"
MEMO_LIMIT = 200_000  # distinct texts remembered per scanned column


def to_text(value) -> str:
    """A cell value as the text the operators see."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (np.floating,)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


class Redactor:
    """Applies column rules and free-text scanning.

    detector: the :class:`~jupyter_guard.redaction.Detector` for ``scan`` rules and
        ``redact_text`` (made on first need with the pattern tier only when not given).
    pseudonym_key: the secret key of ``hash`` rules (at least 16 bytes).
    public_key_pem: the stewards' RSA public key (PEM) for ``encrypt`` rules.
    """

    def __init__(self, detector=None, *, pseudonym_key: bytes | None = None, public_key_pem: bytes | None = None):
        self._detector = detector
        self.pseudonym_key = check_key(pseudonym_key) if pseudonym_key is not None else None
        if public_key_pem is not None:
            load_public_key(public_key_pem)  # a bad key is an error now, not at the first encrypt
        self.public_key_pem = public_key_pem
        self._anonymizer = None
        #: called with the number of cells a scan has just finished (a CLI's progress bar)
        self.on_progress = None

    @property
    def detector(self):
        if self._detector is None:
            from .detector import Detector

            self._detector = Detector()
        return self._detector

    @property
    def anonymizer(self):
        """Presidio's AnonymizerEngine with jupyter_guard's operators registered."""
        if self._anonymizer is None:
            from presidio_anonymizer import AnonymizerEngine

            engine = AnonymizerEngine()
            for op in OPERATORS:
                engine.add_anonymizer(op)
            self._anonymizer = engine
        return self._anonymizer

    # -- free text -----------------------------------------------------------------------------

    def redact_text(self, text: str, entities=None) -> tuple[str, dict[str, int]]:
        """``text`` with each PII span replaced by its ``<ENTITY>`` tag, and counts per entity."""
        if not isinstance(text, str) or not text:
            return text, {}
        return self.apply_findings(text, self.detector.analyze(text, entities))

    def apply_findings(self, text: str, findings) -> tuple[str, dict[str, int]]:
        """Replace the spans of ``findings`` by ``<ENTITY>`` with Presidio's anonymizer
        (overlaps resolved its way: contained spans go, same-type neighbours merge)."""
        if not findings:
            return text, {}
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        result = self.anonymizer.anonymize(
            text,
            [RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in findings],
            operators={"DEFAULT": OperatorConfig("replace")},
        )
        return result.text, dict(Counter(item.entity_type for item in result.items))

    # -- frames --------------------------------------------------------------------------------

    def redact_frame(
        self, df: pd.DataFrame, columns: Sequence[Mapping], *, chunk_rows: int = 100_000, memos: dict | None = None
    ) -> tuple[pd.DataFrame, RedactionReport]:
        """A redacted copy of ``df`` and a report of what was done (never values).

        ``columns``: the catalog's rules, ``[{"name": "ssn", "entity": "US_SSN", "rule":
        "mask"}, ...]``. Columns without a rule are kept; rules naming absent columns are
        ignored and listed in ``report.missing_columns``. ``memos``: a dict kept across calls
        on batches of one read, so a free text repeated in later batches is analysed once
        (bounded by MEMO_LIMIT; the other rules cost too little per value to be worth the memory).
        """
        memos = {} if memos is None else memos
        rules = self._rules(columns)
        report = RedactionReport(rows=len(df))
        by_name = {}
        for col in df.columns:
            by_name.setdefault(col, col)
            by_name.setdefault(str(col), col)
        plan: dict = {}
        for name, (entity, rule) in rules.items():
            col = by_name.get(name)
            if col is None:
                report.missing_columns.append(name)
            else:
                plan[col] = (entity, rule)
        needs = {rule for _, rule in plan.values()}
        if "hash" in needs:
            check_key(self.pseudonym_key)
        encryptor = HybridEncryptor(self.public_key_pem) if "encrypt" in needs else None
        if encryptor is not None:
            report.wrapped_keys[encryptor.key_id] = encryptor.wrapped_key

        chunk_rows = max(1, int(chunk_rows))
        names, arrays = [], []  # by position: duplicate column names stay apart
        for pos, col in enumerate(df.columns):
            entity, rule = plan.get(col, (None, "keep"))
            if col in plan:
                report.columns[str(col)] = rule
            series = df.iloc[:, pos]
            if rule == "keep":
                names.append(col)
                arrays.append(series)
                continue
            nonnull = int(series.notna().sum())
            report.cells += nonnull
            if rule == "drop":
                report.count(entity, nonnull)
                continue
            names.append(col)
            arrays.append(self._redact_column(series, entity, rule, encryptor, report, chunk_rows, memos))
        result = pd.DataFrame(dict(enumerate(arrays)), index=df.index, copy=False)
        result.columns = pd.Index(names, dtype=df.columns.dtype) if len(names) else df.columns[:0]
        log.debug("redacted %d rows x %d rule columns", report.rows, len(plan))
        return result, report

    @staticmethod
    def _rules(columns: Sequence[Mapping]) -> dict[str, tuple[str, str]]:
        rules: dict[str, tuple[str, str]] = {}
        for spec in columns or ():
            try:
                name, entity = str(spec["name"]), str(spec.get("entity") or FREE_TEXT)
            except (KeyError, TypeError, AttributeError):
                raise RedactionError("a column rule is a mapping with name, entity and rule") from None
            rule = spec.get("rule") or ("scan" if entity == FREE_TEXT else "mask")
            if rule not in COLUMN_RULES:
                raise RedactionError(f"column {name!r}: unknown rule {rule!r} (expected one of {', '.join(COLUMN_RULES)})")
            rules[name] = (entity, rule)
        return rules

    def _redact_column(self, series: pd.Series, entity: str, rule: str, encryptor, report, chunk_rows: int,
                       memos: dict):
        n = len(series)
        out = np.empty(n, dtype=object)
        if rule == "replace":
            tag = f"<{entity}>"
            missing = series.isna().to_numpy()
            out[:] = tag
            out[missing] = np.nan
            report.count(entity, int(n - missing.sum()))
            return out
        if rule == "scan":
            return self._scan_column(series, entity, report, chunk_rows, out, memos.setdefault(("scan", entity), {}))
        if rule == "mask":
            op, params = GuardMask(), {"entity_type": entity}
        elif rule == "hash":
            op, params = Pseudonymize(), {"key": self.pseudonym_key}
        elif rule == "encrypt":
            op, params = HybridEncrypt(), {"encryptor": encryptor}
        else:  # pragma: no cover - _rules validated it
            raise RedactionError(f"unknown rule {rule!r}")
        op.validate(params)
        fn = op.value_function(params)  # what op.operate(value, params) applies, bound once
        memo: dict = {}  # value -> result across chunks (bounded), so a repeat costs a dict probe
        get = memo.get

        def once(u):
            if type(u) is not str:
                u = to_text(u)  # the result depends on the text only (True and 1 differ here)
            r = get(u)
            if r is None:
                r = memo[u] = fn(u)
            return r

        counted = 0
        for start in range(0, n, chunk_rows):
            chunk = series.iloc[start : start + chunk_rows]
            codes, uniques = pd.factorize(chunk, use_na_sentinel=True)
            values = np.empty(len(uniques) + 1, dtype=object)
            values[:-1] = [once(u) for u in uniques.to_numpy(dtype=object)]
            values[-1] = np.nan  # code -1 (missing) takes the last slot
            out[start : start + len(chunk)] = values[codes]
            counted += int((codes >= 0).sum())
            if len(memo) >= MEMO_LIMIT:  # bounded: at most MEMO_LIMIT + chunk_rows entries
                memo.clear()
        report.count(entity, counted)
        return out

    def _scan_column(self, series: pd.Series, entity: str, report, chunk_rows: int, out, memo: dict):
        det = self.detector
        entities = [entity] if entity in det.supported_entities else None
        # memo: text -> (redacted, counts) across chunks (and batches), so repeats are analysed once
        n = len(series)
        for start in range(0, n, chunk_rows):
            chunk = series.iloc[start : start + chunk_rows]
            codes, uniques = pd.factorize(chunk, use_na_sentinel=True)
            texts = [to_text(u) for u in uniques]
            todo = [t for t in texts if t not in memo]
            for text, found in zip(todo, det.analyze_many(todo, entities)):
                memo[text] = self.apply_findings(text, found) if found else (text, {})
            weights = np.bincount(codes[codes >= 0], minlength=len(texts))
            values = np.empty(len(texts) + 1, dtype=object)
            for i, text in enumerate(texts):
                red, counts = memo[text]
                values[i] = red
                for e, c in counts.items():
                    report.count(e, c * int(weights[i]))
            values[-1] = np.nan
            out[start : start + len(chunk)] = values[codes]
            if self.on_progress is not None:
                self.on_progress(len(chunk))
            if len(memo) >= MEMO_LIMIT:  # bounded: at most MEMO_LIMIT + chunk_rows entries
                memo.clear()
        return out


def redact_frame(df: pd.DataFrame, columns: Sequence[Mapping], *, detector=None, pseudonym_key: bytes | None = None,
                 public_key_pem: bytes | None = None, chunk_rows: int = 100_000) -> tuple[pd.DataFrame, RedactionReport]:
    """``Redactor(detector, pseudonym_key=..., public_key_pem=...).redact_frame(df, columns)``."""
    return Redactor(detector, pseudonym_key=pseudonym_key, public_key_pem=public_key_pem).redact_frame(
        df, columns, chunk_rows=chunk_rows
    )


class PartitionRedaction:
    """The column rules of one governed read, applied to each partition of a distributed frame
    (Dask's ``map_partitions``) on the worker that holds it.

    Picklable: it carries the rules and the keys, and builds its Redactor (and Presidio) once
    per worker process. The pseudonyms are the pandas path's (same key, same operator), so a
    join across engines works. ``encrypt`` is refused: each partition would wrap its own data
    key, and none of them would reach the audit record.
    """

    _redactors: dict = {}  # per process: (key digest, ner model) -> Redactor

    def __init__(self, columns: Sequence[Mapping], *, pseudonym_key: bytes | None, ner_model: str | None):
        self.columns = [dict(c) for c in columns]
        if any((c.get("rule") or "") == "encrypt" for c in self.columns):
            raise RedactionError("an `encrypt` column rule cannot be applied per partition (each partition would "
                                 "wrap its own key); read this dataset with pandas")
        self.pseudonym_key = pseudonym_key
        self.ner_model = ner_model

    def redactor(self) -> Redactor:
        import hashlib

        key = (hashlib.sha256(self.pseudonym_key or b"").hexdigest(), self.ner_model)
        red = PartitionRedaction._redactors.get(key)
        if red is None:
            scans = any((c.get("rule") or ("scan" if c.get("entity") == "FREE_TEXT" else "")) == "scan"
                        for c in self.columns)
            detector = None
            if scans:  # Presidio only where a rule scans text
                from .detector import Detector

                detector = Detector(ner_model=self.ner_model)
            red = PartitionRedaction._redactors[key] = Redactor(detector, pseudonym_key=self.pseudonym_key)
        return red

    def __call__(self, partition: pd.DataFrame) -> pd.DataFrame:
        out, _ = self.redactor().redact_frame(partition, self.columns)
        # a redacted string column stays of its string dtype (Dask reads text as string[pyarrow];
        # object columns would break its Parquet writer's schema)
        keep = {c: partition[c].dtype for c in out.columns
                if c in partition.columns and isinstance(partition[c].dtype, pd.StringDtype)
                and out[c].dtype != partition[c].dtype}
        return out.astype(keep) if keep else out
