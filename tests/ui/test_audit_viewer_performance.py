"""Benchmark (in the UI run): the steward's audit viewer over a 1,000,000-event log.

Targets (issue 6): the first page shows in under 1 s, and scrolling does not freeze. Both are
measured in real headless Chromium against a real lab whose SQLite log holds 1,000,000 sealed
records, side by side with the bare REST call for the same page, so the figures compare within
one run on a shared machine. Results go to benchmarks/results/audit_viewer.json; the figures
are quoted in docs/performance.md.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from .lab_users import STEWARD_TOKEN

pytestmark = pytest.mark.ui

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "audit_viewer.json"
FIRST_PAGE_TARGET_MS = 1000.0
#: a frame longer than this while scrolling is a freeze a user notices
FREEZE_MS = 500.0
ROUNDS = 3
SCROLL_FRAMES = 240
LAB_LOAD_MS = 90_000

OBSERVE = """() => {
  window.__guardLongTasks = [];
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__guardLongTasks.push(e.duration);
  }).observe({type: 'longtask', buffered: true});
}"""

FIRST_PAGE = """() => new Promise((resolve, reject) => {
  const done = () => {
    const m = performance.getEntriesByName('jupyter-guard:audit-first-page');
    const o = performance.getEntriesByName('jupyter-guard:audit-open');
    if (m.length && o.length) {
      resolve({ms: m[m.length - 1].startTime - o[o.length - 1].startTime,
               rows: document.querySelectorAll('#jp-guard-audit .jp-guard-audit-row').length});
      return true;
    }
    return false;
  };
  void window.jupyterapp.commands.execute('jupyter-guard:open-audit-viewer');
  const t0 = performance.now();
  const poll = () => { if (!done()) { if (performance.now() - t0 > 60000) reject('no first page'); else setTimeout(poll, 5); } };
  poll();
})"""

# Scroll the list one step per animation frame (a fast fling, then jumps to the end that make
# the viewer fetch further pages) and record every frame's duration.
SCROLL = """(frames) => new Promise(resolve => {
  const list = document.querySelector('#jp-guard-audit .jp-guard-audit-list');
  window.__guardLongTasks.length = 0;  // only the long tasks while scrolling count here
  const gaps = [];
  let last = performance.now(), n = 0, maxRows = 0;
  const step = (now) => {
    gaps.push(now - last); last = now; n += 1;
    if (n % 4 === 0) list.scrollTop = list.scrollHeight;  // to the end: the next page is fetched
    else list.scrollTop += 1500;
    maxRows = Math.max(maxRows, list.querySelectorAll('.jp-guard-audit-row').length);
    if (n < frames) requestAnimationFrame(step);
    else resolve({gaps, maxRows,
                  loaded: Math.round(list.scrollHeight / (list.querySelector('.jp-guard-audit-row')?.offsetHeight || 1)),
                  longTasks: window.__guardLongTasks});
  };
  requestAnimationFrame(step);
})"""


def _api_first_page_ms(lab: Any) -> float:
    req = urllib.request.Request(
        f"{lab.base_url}/jupyter-guard/api/audit?limit=200",
        headers={"Authorization": f"token {STEWARD_TOKEN}"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.loads(resp.read())
    assert len(body["records"]) == 200
    return (time.perf_counter() - t0) * 1000


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_first_page_of_a_million_events_and_scrolling(browser: Any, big_audit_lab: Any) -> None:
    lab, built = big_audit_lab
    api_ms = [_api_first_page_ms(lab) for _ in range(ROUNDS)]
    first: list[dict] = []
    scroll: dict = {}
    for i in range(ROUNDS):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            page.goto(lab.url("/lab", STEWARD_TOKEN), timeout=LAB_LOAD_MS)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.started"
                " && window.jupyterapp.commands.isVisible('jupyter-guard:open-audit-viewer')",
                timeout=LAB_LOAD_MS,
            )
            page.evaluate(OBSERVE)
            first.append(page.evaluate(FIRST_PAGE))
            if i == ROUNDS - 1:
                page.wait_for_timeout(1000)  # let the prefetch and the verification start
                scroll = page.evaluate(SCROLL, SCROLL_FRAMES)
        finally:
            context.close()

    first_ms = [r["ms"] for r in first]
    gaps = scroll["gaps"][1:]
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "events": built["events"],
        "log_bytes": built["db_bytes"],
        "first_page_ms": {"median": statistics.median(first_ms), "all": first_ms},
        "rows_in_first_page": first[0]["rows"],
        "api_first_page_ms": {"median": statistics.median(api_ms), "all": api_ms},
        "ui_over_api": statistics.median(first_ms) / statistics.median(api_ms),
        "scroll": {
            "frames": len(gaps),
            "frame_ms_median": statistics.median(gaps),
            "frame_ms_p95": _p(gaps, 0.95),
            "frame_ms_max": max(gaps),
            "long_tasks": len(scroll["longTasks"]),
            "longest_task_ms": max(scroll["longTasks"], default=0.0),
            "records_loaded": scroll["loaded"],
            "max_rows_in_dom": scroll["maxRows"],
        },
        "targets": {"first_page_ms": FIRST_PAGE_TARGET_MS, "freeze_ms": FREEZE_MS},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    assert first[0]["rows"] > 0
    assert statistics.median(first_ms) < FIRST_PAGE_TARGET_MS, result
    s = result["scroll"]
    assert s["records_loaded"] > 1000, result  # scrolling really fetched further pages
    assert s["max_rows_in_dom"] < 150, result  # virtualised: the DOM holds the visible rows only
    assert s["frame_ms_max"] < FREEZE_MS, result
