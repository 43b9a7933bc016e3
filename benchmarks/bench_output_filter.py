"""What the live output filter costs per kernel output, side by side with passing it through.

    python benchmarks/bench_output_filter.py [--outputs 300]

The filter runs in the server for each output message of a filtered kernel
(jupyter_guard.server.observer -> export.redact_output with the filter's own ScanCache).
Three shapes of output, each measured as a batch of distinct outputs (nothing cached from a
previous one) and as a repeated output (a cell run again, a DataFrame shown twice):

* ``print``: a stream of 5 short lines, one naming an e-mail;
* ``df.head()``: an execute_result with text/plain and a pandas text/html table of 5 rows;
* ``log``: a stream of 50 distinct log lines.

Pass-through is the cost of the JSON round trip the v1 protocol pays anyway (unpack, repack).
Writes benchmarks/results/output_filter.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from jupyter_guard.export import ScanCache, redact_output

RESULTS = HERE / "results" / "output_filter.json"


def outputs(kind: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        if kind == "print":
            text = "".join(f"step {i}.{j}: ok\n" for j in range(4)) + f"mail sent to user{i}@example.org\n"
            out.append({"output_type": "stream", "name": "stdout", "text": text})
        elif kind == "df.head()":
            rows = [(i * 5 + r, f"p{i}.{r}@example.org", f"(212) 555-{(i * 5 + r) % 10000:04d}") for r in range(5)]
            plain = "\n".join(f"{a}  {b}  {c}" for a, b, c in rows)
            html = "<table>" + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows) + "</table>"
            out.append({"output_type": "execute_result", "execution_count": i, "metadata": {},
                        "data": {"text/plain": plain, "text/html": html}})
        else:
            text = "".join(f"2026-12-04 10:{j % 60:02d}:{i % 60:02d} INFO worker-{i}-{j} processed batch {i * 50 + j}\n"
                           for j in range(50))
            out.append({"output_type": "stream", "name": "stderr", "text": text})
    return out


def per_output(fn, items) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e6  # microseconds


def run(n: int) -> dict:
    cache = ScanCache()
    redact_output(outputs("print", 1)[0], cache)  # build the engines
    passthrough = lambda o: json.loads(json.dumps(o))  # noqa: E731
    result = {}
    for kind in ("print", "df.head()", "log"):
        items = outputs(kind, n)
        base = statistics.median(per_output(passthrough, items) for _ in range(3))
        distinct = per_output(lambda o: redact_output(o, ScanCache()), items[: max(20, n // 5)])
        cached = per_output(lambda o: redact_output(o, cache), [items[0]] * n)  # the same output again
        result[kind] = {"passthrough_us": round(base, 1), "filtered_distinct_us": round(distinct, 1),
                        "filtered_repeated_us": round(cached, 1)}
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", type=int, default=300)
    args = ap.parse_args(argv)
    result = run(args.outputs)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for kind in ("print", "df.head()", "log"):
        r = result[kind]
        print(f"{kind:10} pass-through {r['passthrough_us']:8.1f} us   filtered: distinct {r['filtered_distinct_us']:9.1f} us, "
              f"repeated {r['filtered_repeated_us']:8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
