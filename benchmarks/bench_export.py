"""Notebook export: scanning and redacting a 50 MB notebook with 5,000 outputs.

    python benchmarks/bench_export.py [--outputs 5000] [--mb 50] [--repeat 3] [--quick]

The notebook is synthetic but shaped like a working analysis: half the outputs are
``df.head(30)``-style results (``text/plain`` + a pandas ``text/html`` table) over a 1,000-row
patient frame (names, e-mails, phones, SSNs), half are ``print`` / logging streams of 100
lines, 1 in 10 lines naming a patient; a few error tracebacks with ANSI colours and a few PNG
figures. Rows and log lines repeat across outputs, as they do when a notebook shows the same
frame many times -- the distinct-line count is printed, since it is what the time depends on.

Measured (median of ``--repeat`` runs, engines already built): ``redact_notebook`` end to
end, split into collecting the text (cutting outputs into lines / HTML text nodes),
detection (``Detector.analyze_many`` over distinct lines + detect-secrets on the lines
that could hold a secret) and rewriting; plus reading (``load_notebook``) and writing
(``dumps_notebook``) the file, which an export also does. Checks that no PII value of the
frame is left in the output.

Writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from jupyter_guard.export import ExportPlan, dumps_notebook, load_notebook, redact_notebook
from jupyter_guard.export import notebook as engine

RESULTS = HERE / "results" / "export.json"
FIRST = ["Ann", "Bob", "Carla", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena"]
LAST = ["Lee", "Ng", "Okafor", "Silva", "Novak", "Haddad", "Kim", "Meyer", "Rossi", "Tanaka"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" * 40


AREA = [212, 303, 312, 415, 503, 617, 646, 702, 718, 917]


def patients(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append({
            "id": 10_000 + i,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{i}@example.org",
            "phone": f"({rng.choice(AREA)}) 555-01{rng.randint(0, 99):02d}",
            "ssn": f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}",
            "age": rng.randint(18, 90),
            "visits": rng.randint(0, 40),
        })
    return rows


def table_output(rows: list[dict], count: int) -> nbformat.NotebookNode:
    cols = list(rows[0])
    plain = ["  ".join(f"{c:>12}" for c in cols)]
    plain += ["  ".join(f"{r[c]!s:>12}" for c in cols) for r in rows]
    html = ['<div>\n<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">',
            "      <th></th>", *(f"      <th>{c}</th>" for c in cols), "    </tr>\n  </thead>\n  <tbody>"]
    for k, r in enumerate(rows):
        html += ["    <tr>", f"      <th>{k}</th>", *(f"      <td>{r[c]}</td>" for c in cols), "    </tr>"]
    html += ["  </tbody>\n</table>\n</div>"]
    return new_output("execute_result", execution_count=count,
                      data={"text/plain": "\n".join(plain), "text/html": "\n".join(html)})


def build(n_outputs: int, target_mb: float, patients_n: int = 1_000, seed: int = 7) -> tuple[nbformat.NotebookNode, list[dict]]:
    rng = random.Random(seed)
    frame = patients(patients_n, rng)
    templates = [
        "epoch {e}/50 done",
        "INFO fitting model on fold {k} ({n} rows)",
        "WARNING missing value in column visits",
        "processed batch {e} of 50",
    ]
    outputs = []
    for j in range(n_outputs):
        if j % 500 == 499:
            r = rng.choice(frame)
            outputs.append(new_output("error", ename="KeyError", evalue=f"'{r['email']}'", traceback=[
                "\x1b[0;31m" + "-" * 75 + "\x1b[0m",
                f"\x1b[0;31mKeyError\x1b[0m: '{r['email']}'",
            ]))
        elif j % 500 == 250:
            outputs.append(new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"}))
        elif j % 2 == 0:
            start = rng.randrange(0, len(frame) - 30)
            outputs.append(table_output(frame[start:start + 30], j))
        else:
            lines = []
            for _ in range(100):
                if rng.random() < 0.1:
                    r = rng.choice(frame)
                    lines.append(f"contacting {r['name']} <{r['email']}> at {r['phone']} (ssn {r['ssn']})")
                else:
                    lines.append(rng.choice(templates).format(e=rng.randint(1, 50), k=rng.randint(1, 5),
                                                              n=rng.choice((800, 900, 1000))))
            outputs.append(new_output("stream", name="stdout", text="\n".join(lines) + "\n"))
    nb = new_notebook()
    per_cell = 5
    nb.cells = [new_code_cell(f"step_{k}()", id=f"c{k}", execution_count=k,
                              outputs=outputs[k * per_cell:(k + 1) * per_cell])
                for k in range((len(outputs) + per_cell - 1) // per_cell)]
    size = len(nbformat.writes(nb).encode())
    # pad the stream outputs with repeated log lines until the file reaches the target size
    pad = "epoch 1: loss=0.1234 acc=0.987 (steady)\n"
    missing = int(target_mb * 1_000_000) - size
    streams = [o for c in nb.cells for o in c.outputs if o.output_type == "stream"]
    if missing > 0 and streams:
        each = missing // len(streams) // (len(pad) + 4) + 1
        for o in streams:
            o.text += pad * each
    return nb, frame


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def run(n_outputs: int, mb: float, repeat: int) -> dict:
    nb, frame = build(n_outputs, mb)
    raw = dumps_notebook(nb).encode("utf-8")
    n_out = sum(len(c.outputs) for c in nb.cells)
    print(f"notebook: {len(raw) / 1e6:.1f} MB, {n_out} outputs, {len(nb.cells)} cells", flush=True)
    plan = ExportPlan("benchmark", blocked_cells=frozenset({"c3"}))
    redact_notebook(nb, plan)  # build the engines (Presidio, spaCy blank pipeline, detect-secrets)

    phases: dict[str, list[float]] = {"collect": [], "detect": [], "rewrite": [], "total": [], "load": [], "dump": []}
    original_detect = engine._detect
    stats = {}

    def timed_detect(segments, detector):
        stats["distinct_lines"] = len(segments)
        stats["secret_candidates"] = sum(1 for s in segments if engine._SECRET_HINT.search(s))
        t0 = time.perf_counter()
        hits = original_detect(segments, detector)
        stats["t_detect"] = time.perf_counter() - t0
        stats["t_detect_start"] = t0
        stats["lines_with_findings"] = len(hits)
        return hits

    engine._detect = timed_detect
    try:
        for _ in range(repeat):
            t_load, loaded = timed(lambda: load_notebook(raw))
            t0 = time.perf_counter()
            out, report = redact_notebook(loaded, plan)
            t1 = time.perf_counter()
            t_dump, text = timed(lambda out=out: dumps_notebook(out))
            phases["load"].append(t_load)
            phases["total"].append(t1 - t0)
            phases["collect"].append(stats["t_detect_start"] - t0)
            phases["detect"].append(stats["t_detect"])
            phases["rewrite"].append(t1 - stats["t_detect_start"] - stats["t_detect"])
            phases["dump"].append(t_dump)
    finally:
        engine._detect = original_detect

    # PII check: none of the frame's values that occur in the input may occur in the output
    leaks = [v for r in frame for v in (r["email"], r["ssn"], r["phone"]) if v in text]
    assert not leaks, f"{len(leaks)} PII values left in the export"
    med = {k: round(statistics.median(v), 3) for k, v in phases.items()}
    result = {
        "notebook_mb": round(len(raw) / 1e6, 1),
        "outputs": n_out,
        "distinct_lines": stats["distinct_lines"],
        "secret_candidates": stats["secret_candidates"],
        "distinct_lines_with_findings": stats["lines_with_findings"],
        "report": report.to_dict(),
        "seconds_median": med,
        "runs": repeat,
        "target_seconds": 5.0,
        "met": med["total"] < 5.0,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=int, default=5000)
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="500 outputs, 5 MB, one run (smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.outputs, args.mb, args.repeat = 500, 5, 1
    result = run(args.outputs, args.mb, args.repeat)
    print(json.dumps(result, indent=1))
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
