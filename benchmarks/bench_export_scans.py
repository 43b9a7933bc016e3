"""How many times one notebook is scanned for an export review, its download and seven exports.

    python benchmarks/bench_export_scans.py [--outputs 100] [--lines 20]

The sequence is the one a researcher causes in JupyterLab and the server's gates run: the
export review (``POST export/preview``: assess + redaction counts), the download it approves
(``/files``: assess + redact), then the notebook exported in seven formats (``/nbconvert/<fmt>``:
assess + redact each). It runs the server's own objects (the governor over a real catalog and
SQLite audit log, :class:`jupyter_guard.export.governance.NotebookExports`) side by side:

* **before**: every step scans the notebook afresh (the scan cache holds nothing), which is what
  the gates did before issue 11 — assess scanned and threw its scan away, then redaction
  scanned again;
* **after**: the gate's :class:`~jupyter_guard.export.ScanCache`, as the server runs it.

It counts ``redact_notebook`` passes, detection passes (calls that analysed any text) and
distinct texts analysed, and times both runs. Results go to benchmarks/results/export_scans.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from nbformat.v4 import new_code_cell, new_notebook, new_output

from jupyter_guard.audit import AuditEvent, AuditLog, SQLiteAuditStore
from jupyter_guard.export import governance, notebook as engine
from jupyter_guard.export.governance import ExportSettings, NotebookExports
from jupyter_guard.governor import Governor, load_governance

RESULTS = HERE / "results" / "export_scans.json"
FORMATS = ("html", "pdf", "latex", "markdown", "python", "rst", "script")
CATALOG = """\
labels: [public, internal, confidential, restricted]
datasets:
  - name: hr
    label: confidential
    steward: Hana HR <hana@example.org>
    locations: [data/hr.csv]
"""
POLICY = """\
roles:
  researcher: {users: [rita]}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - {name: hr-read, labels: [confidential], actions: [read, export, download], roles: [researcher], effect: redact}
"""


def notebook(outputs: int, lines: int):
    cells = []
    for i in range(outputs):
        text = "".join(f"row {i}-{j}: employee{i}.{j}@example.org paid via 4111 1111 1111 {1000 + j}\n"
                       for j in range(lines))
        cells.append(new_code_cell(f"print(hr.iloc[{i}])", outputs=[new_output("stream", name="stdout", text=text)]))
    return new_notebook(cells=cells)


class Counting:
    """Counts redact_notebook passes and detection passes/texts (wraps the engine's functions)."""

    def __init__(self):
        self.redactions = self.detections = self.texts = 0

    def __enter__(self):
        self._redact, self._detect = governance.redact_notebook, engine._detect

        def redact(*a, **kw):
            self.redactions += 1
            return self._redact(*a, **kw)

        def detect(segments, detector):
            self.detections += 1
            self.texts += len(segments)
            return self._detect(segments, detector)

        governance.redact_notebook, engine._detect = redact, detect
        return self

    def __exit__(self, *exc):
        governance.redact_notebook, engine._detect = self._redact, self._detect


def review_download_and_export(exports: NotebookExports, nb, who, path: str) -> None:
    steps = [("export", "html")] + [("download", None)] + [("export", f) for f in FORMATS]
    for action, fmt in steps:
        a = exports.assess(who, path, nb, action, fmt)
        assert a.effect == "redact", a.to_dict()
        exports.redact(a, nb)


def run(outputs: int, lines: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "catalog").mkdir()
        (root / "catalog" / "datasets.yaml").write_text(CATALOG)
        (root / "catalog" / "policy.yaml").write_text(POLICY)
        log = AuditLog(SQLiteAuditStore(path=str(root / "audit.sqlite")), b"k" * 32)
        gov = Governor(load_governance(root / "catalog", root), log)
        path = "analysis.ipynb"
        # the notebook's kernel read hr (what the server's kernel route records)
        log.append(AuditEvent(event_type="decision", user="rita", action="read", target=str(root / "data/hr.csv"),
                              dataset="hr", label="confidential", decision="redact", notebook=path,
                              details={"permitted": True}))
        who = gov.principal("rita")
        nb = notebook(outputs, lines)
        engine.default_detector().analyze_many(["warm up 4111 1111 1111 1111"])
        out = {}
        for name, max_chars in (("before", 0), ("after", 32_000_000)):
            exports = NotebookExports(gov, ExportSettings())
            exports.scans.max_chars = max_chars  # 0: nothing is kept, every step scans afresh
            with Counting() as c:
                t0 = time.perf_counter()
                review_download_and_export(exports, nb, who, path)
                seconds = time.perf_counter() - t0
            out[name] = {"redact_notebook_passes": c.redactions, "detection_passes": c.detections,
                         "texts_analysed": c.texts, "seconds": round(seconds, 3)}
        log.close()
    out["speedup"] = round(out["before"]["seconds"] / out["after"]["seconds"], 1)
    out["notebook"] = {"outputs": outputs, "lines_per_output": lines, "steps": 2 + len(FORMATS)}
    out["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", type=int, default=100)
    ap.add_argument("--lines", type=int, default=20)
    args = ap.parse_args(argv)
    result = run(args.outputs, args.lines)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    b, a = result["before"], result["after"]
    print(f"review + download + {len(FORMATS)} exports of one notebook "
          f"({args.outputs} outputs x {args.lines} lines):")
    print(f"  before: {b['detection_passes']} detection passes over {b['texts_analysed']} texts, {b['seconds']} s")
    print(f"  after:  {a['detection_passes']} detection pass(es) over {a['texts_analysed']} texts, {a['seconds']} s "
          f"({result['speedup']}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
