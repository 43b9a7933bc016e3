"""Proposing column classifications for unlabeled data, by sampling, for a steward to review.

A column is proposed as an entity when that entity covers (nearly) the whole cell in at
least half of the sampled non-empty values (``share``); as ``FREE_TEXT`` (rule ``scan``) when
its values are prose and PII turns up inside them; a column name such as ``first_name`` or
``dob`` adds a proposal the values alone cannot show without the NER tier. A proposal is a
suggestion: ``catalog_entry`` writes it as YAML with the steward left empty, so the catalog
does not validate until a person has filled it in.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pandas as pd

from .frame import FREE_TEXT, to_text

#: the rule proposed for each entity (a steward may change it)
DEFAULT_RULES = {
    "US_SSN": "mask",
    "CREDIT_CARD": "mask",
    "IBAN_CODE": "mask",
    "US_BANK_NUMBER": "mask",
    "US_ITIN": "mask",
    "US_PASSPORT": "mask",
    "US_DRIVER_LICENSE": "mask",
    "PHONE_NUMBER": "mask",
    "EMAIL_ADDRESS": "hash",
    "PERSON": "hash",
    "IP_ADDRESS": "hash",
    "DATE_TIME": "mask",
    "LOCATION": "replace",
    "URL": "replace",
    FREE_TEXT: "scan",
}
WHOLE_CELL = 0.8  # a finding covering >= 80% of the stripped cell is "the cell is that entity"
MIN_SHARE = 0.5
MIN_FREE_TEXT_SHARE = 0.05

NAME_HINTS = [
    (re.compile(r"(^|_)(first|last|given|family|full|middle|sur)?_?name$|^surname$|^patient$", re.IGNORECASE), "PERSON"),
    (re.compile(r"(^|_)(dob|birth_?date|date_?of_?birth|birthday)$", re.IGNORECASE), "DATE_TIME"),
    (re.compile(r"(^|_)(address|street|city|town)$", re.IGNORECASE), "LOCATION"),
    (re.compile(r"(^|_)(ssn|social_security(_number)?)$", re.IGNORECASE), "US_SSN"),
    (re.compile(r"(^|_)(e_?mail)(_address)?$", re.IGNORECASE), "EMAIL_ADDRESS"),
    (re.compile(r"(^|_)(phone|mobile|tel|telephone)(_number)?$", re.IGNORECASE), "PHONE_NUMBER"),
]


def _sample(series: pd.Series, n: int) -> list[str]:
    values = series.dropna()
    if len(values) > n:  # evenly spread, deterministic
        values = values.iloc[np.linspace(0, len(values) - 1, n).astype(int)]
    return [t for t in (to_text(v).strip() for v in values) if t]


def classify_frame(df: pd.DataFrame, sample_rows: int = 200, *, detector=None) -> dict[str, dict]:
    """column -> {"entity", "rule", "share", "basis"} for the columns that look like PII.

    ``share`` is the fraction of sampled non-empty values in which the entity was found
    (whole cell for an entity column, anywhere for FREE_TEXT); ``basis`` says whether the
    values or only the column name led to the proposal.
    """
    if detector is None:
        from .detector import Detector

        detector = Detector()
    out: dict[str, dict] = {}
    for col in df.columns:
        sample = _sample(df[col], sample_rows)
        name = str(col)
        hint = next((entity for rx, entity in NAME_HINTS if rx.search(name)), None)
        if not sample:
            continue
        findings = detector.analyze_many(sample)
        whole: Counter = Counter()
        anywhere = 0
        for text, found in zip(sample, findings):
            if found:
                anywhere += 1
            covered = {f.entity_type for f in found if (f.end - f.start) >= WHOLE_CELL * len(text)}
            whole.update(covered)
        n = len(sample)
        prose = sum(1 for t in sample if len(t) >= 25 and t.count(" ") >= 3) / n
        best = whole.most_common(1)[0] if whole else None
        if best and best[1] / n >= MIN_SHARE:
            entity, share, basis = best[0], best[1] / n, "values"
        elif prose >= MIN_SHARE and anywhere / n >= MIN_FREE_TEXT_SHARE:
            entity, share, basis = FREE_TEXT, anywhere / n, "values"
        elif hint:
            entity, share, basis = hint, whole.get(hint, 0) / n, "column name"
        else:
            continue
        out[name] = {"entity": entity, "rule": DEFAULT_RULES.get(entity, "mask"), "share": round(share, 3),
                     "basis": basis}
    return out


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) and name.lower() not in {"true", "false", "null", "yes", "no", "on", "off"} \
        else json.dumps(name)


def dataset_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-.") or "dataset"
    return name if name[0].isalnum() else "d" + name


def catalog_entry(name: str, path: str, proposal: dict, *, label: str = "confidential", steward: str | None = None,
                  sample_rows: int | None = None) -> str:
    """YAML of a catalog ``datasets:`` entry with the proposed columns, to review and paste.

    Without ``steward`` the entry has ``steward: null``, which ``catalog validate`` rejects
    until someone fills it in (a dataset always needs a person to ask).
    """
    name = dataset_name(name)
    how = f"{sample_rows} sampled rows" if sample_rows else "sampled rows"
    lines = [
        f"# Proposed by `jupyter guard classify` from {how}: review every line before use.",
        "datasets:",
        f"  - name: {json.dumps(name)}",
        f"    description: {json.dumps('Proposed classification of ' + str(path))}",
        f"    label: {json.dumps(label)}    # public < internal < confidential < restricted",
        (f"    steward: {json.dumps(steward)}" if steward
         else "    steward: null    # REQUIRED: 'Name <email>' of whom people ask for access"),
        "    locations:",
        f"      - {json.dumps(str(path))}",
    ]
    if proposal:
        lines.append("    columns:")
        for col, p in proposal.items():
            note = f"{p['share']:.0%} of sampled values" + (" (by column name)" if p.get("basis") == "column name" else "")
            lines.append(f"      {_key(col)}: {{entity: {p['entity']}, rule: {p['rule']}}}    # {note}")
    else:
        lines.append("    columns: {}    # no PII found in the sample")
    return "\n".join(lines) + "\n"
