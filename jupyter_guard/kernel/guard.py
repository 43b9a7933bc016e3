"""The kernel guard's state: decisions for the running cell, redaction, the cell's report.

One :class:`Guard` per loaded extension. It asks the server for a decision on every read
target (only the server knows the catalog), caches answers for the duration of one
execution (keyed by the request's ``msg_id``: the next cell asks again, since policy and
catalog may have changed), applies the decision (deny -> GuardDenied; redact -> column rules
through :mod:`jupyter_guard.redaction`; allow -> unchanged), and keeps the per-execution report
the server reads from the ``execute_reply`` metadata. The report holds names, rules and
counts — never data values.
"""

from __future__ import annotations

import contextlib
import logging
import re
import os
import threading
from typing import Any

from ..errors import GuardDenied
from .client import GuardClient
from .report import read_entry, refusal_message

log = logging.getLogger("jupyter_guard.kernel")

ENV_NER_MODEL = "JUPYTER_GUARD_NER_MODEL"
MAX_READS = 200  # report entries per execution; more are counted, not listed
#: stricter first, when two tables' rules name the same result column
RULE_STRICTNESS = {"drop": 6, "mask": 5, "replace": 4, "hash": 3, "encrypt": 2, "scan": 1, "keep": 0}
#: reader arguments that rename or shift columns, so catalog column names may not match
RENAMING_ARGS = ("names", "header", "skiprows")

_local = threading.local()

#: the loaded extension's parts (shell, guard, hooks, kernel, finish_metadata wrapper)
STATE: dict[str, Any] = {}


def inside() -> bool:
    """True while this thread runs inside a governed reader or the guard's own machinery."""
    return getattr(_local, "depth", 0) > 0


@contextlib.contextmanager
def governed():
    """Mark the thread as inside a governed reader: its own file opens are not checked again."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


class Guard:
    def __init__(self, shell: Any):
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self.spark_inputs: dict[str, list[str]] = {}  # Spark input file -> datasets it was read as
        self.client = GuardClient()
        self.purpose: str | None = None  # the server's, as last seen (the server holds the real one)
        self.justification: str | None = None
        self.ner_model = os.environ.get(ENV_NER_MODEL) or None
        self.totals: dict[str, int] = {}
        self._lock = threading.RLock()
        self._msg_id: str | None = None
        self._cache: dict[tuple, dict] = {}
        self._reads: list[dict] = []
        self._dropped = 0
        self._redactor: Any = None

    # -- the current execution -----------------------------------------------------------

    def request_ids(self) -> tuple[str | None, str | None]:
        """(msg_id, cell_id) of the execute request being handled (None outside one)."""
        try:
            parent = self.kernel.get_parent() if self.kernel is not None else None
        except Exception:
            parent = None
        if not isinstance(parent, dict):
            return None, None
        header = parent.get("header") or {}
        metadata = parent.get("metadata") or {}
        cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
        return header.get("msg_id"), cell_id if isinstance(cell_id, str) else None

    def _execution(self) -> tuple[str | None, str | None]:
        msg_id, cell_id = self.request_ids()
        if msg_id != self._msg_id:  # a new execution: nothing cached, nothing reported yet
            self._msg_id = msg_id
            self._cache = {}
            self._reads = []
            self._dropped = 0
        return msg_id, cell_id

    def reset(self) -> None:
        """Forget the cache and the report (pre_run_cell; the msg_id check also does this)."""
        with self._lock:
            self._msg_id = None
            self._cache, self._reads, self._dropped = {}, [], 0

    def stamp(self, parent: dict) -> dict:
        """The ``execute_reply`` metadata for the execution that ``parent`` requested."""
        msg_id = ((parent or {}).get("header") or {}).get("msg_id")
        with self._lock:
            reads = list(self._reads) if msg_id is not None and msg_id == self._msg_id else []
            dropped = self._dropped if reads else 0
        out: dict[str, Any] = {"guarded": True, "reads": reads}
        if dropped:
            out["reads_not_listed"] = dropped
        return out

    def report(self, entry: dict) -> None:
        with self._lock:
            self._execution()
            effect = entry.get("effect") or "?"
            self.totals[effect] = self.totals.get(effect, 0) + 1
            if len(self._reads) < MAX_READS:
                self._reads.append(entry)
            else:
                self._dropped += 1

    # -- decisions -----------------------------------------------------------------------

    def decide(self, target: str, kind: str | None) -> dict:
        """The server's decision on reading ``target`` (cached for this execution)."""
        with self._lock:
            msg_id, cell_id = self._execution()
            key = (kind, target)
            hit = self._cache.get(key)
            if hit is not None and not hit.get("ticket"):  # a ticket serves one read: the next asks again
                return hit
            # no purpose: the server decides under the purpose it holds for this kernel
            body = {"target": target, "kind": kind, "action": "read", "msg_id": msg_id or "", "cell_id": cell_id}
            if self.justification:
                body["justification"] = self.justification
            with governed():  # the HTTP call's own imports and file reads are not governed reads
                decision = self.client.decide(body)
            if decision.get("effect") == "justify" and decision.get("permitted") and self.justification:
                self.justification = None  # one justification, one use
            self._cache[key] = decision
            return decision

    def decide_all(self, targets: list[tuple[str, str | None]], reader: str) -> list[dict]:
        """Decide every target; raise GuardDenied (and report it) on the first refusal."""
        __tracebackhide__ = True  # the researcher sees their own line and the reason, not guard internals
        decisions = []
        for target, kind in targets:
            decision = self.decide(target, kind)
            if not decision.get("permitted"):
                self.report(read_entry(decision, reader, target, rows=0))
                raise GuardDenied(refusal_message(decision), decision=decision)
            decisions.append((target, decision))
        return [d for _, d in decisions]

    # -- applying decisions to what a reader returned ------------------------------------

    def apply(self, result: Any, targets: list[tuple[str, str | None]], decisions: list[dict], reader: str,
              kwargs: dict | None = None, lineage: Any = None) -> Any:
        """Return what the reader read, redacted where the decisions say so, carrying its sources."""
        out = self._apply(result, targets, decisions, reader, kwargs, lineage)
        names = sorted({d["dataset"] for d in decisions if d.get("dataset")})
        if names and _is_spark_frame(out):
            # Spark frames carry no attrs: remember which input files are which datasets', so a
            # frame written later (df.write...) is known by its plan's inputFiles()
            with governed():
                for f in _input_files(out):
                    self.spark_inputs[f] = names
        return with_sources(out, names)

    def apply_brokered(self, result: Any, decisions: list[dict]) -> Any:
        """A brokered read's result (redacted by the broker), carrying its sources."""
        return with_sources(result, sorted({d["dataset"] for d in decisions if d.get("dataset")}))

    def derive(self, target: str, sources: list[str], writer: str, shape: str = "file") -> dict:
        """Ask before writing a frame made from governed data to ``target``: the file will be
        governed as its most sensitive source. Raises GuardDenied when refused."""
        __tracebackhide__ = True
        with self._lock:
            msg_id, cell_id = self._execution()
        body = {"target": target, "datasets": sources, "writer": writer, "shape": shape, "msg_id": msg_id or "",
                "cell_id": cell_id}
        with governed():
            answer = self.client.derived(body)
        if not answer.get("permitted"):
            raise GuardDenied(refusal_message(answer), decision=answer)
        return answer

    def _apply(self, result: Any, targets: list[tuple[str, str | None]], decisions: list[dict], reader: str,
               kwargs: dict | None = None, lineage: Any = None) -> Any:
        governed_ = [(t[0], d) for t, d in zip(targets, decisions) if d.get("dataset")]
        for (target, kind), d in zip(targets, decisions):
            if d.get("classify") and not d.get("dataset"):
                self.propose_classification(result, target, kind)
        redacting = [(t, d) for t, d in governed_ if d.get("effect") == "redact"]
        if not redacting:
            for target, d in governed_:
                self.report(read_entry(d, reader, target, rows=_rows(result)))
            return result
        rules = _merge_rules([d for _, d in redacting])
        if not rules:
            for target, d in governed_:
                entry = read_entry(d, reader, target, rows=_rows(result))
                if d.get("effect") == "redact":
                    entry["note"] = "redact decision without column rules in the catalog: returned as read"
                self.report(entry)
            return result
        redact = _FrameRedaction(self, rules, reader, governed_, kwargs or {}, lineage)
        return redact.result(result)

    def propose_classification(self, result: Any, target: str, kind: str | None) -> None:
        """The policy asks for ungoverned data to be classified: sample it, propose to a steward.

        Best effort: the read itself was allowed, so a failure here never fails the read.
        """
        pd = _pandas()
        if pd is None or not isinstance(result, pd.DataFrame):
            return
        try:
            with governed():
                from ..redaction import classify_frame

                proposal = classify_frame(result, sample_rows=200, detector=self.redactor().detector)
                if proposal:
                    msg_id, cell_id = self.request_ids()
                    self.client.propose({"target": target, "kind": kind, "msg_id": msg_id, "cell_id": cell_id,
                                         "proposal": {c: {k: p[k] for k in ("entity", "rule", "share")} for c, p in proposal.items()}})
        except Exception:  # noqa: BLE001 - never fail an allowed read over a proposal
            log.debug("jupyter_guard: classification proposal failed for %s", target, exc_info=True)

    def redactor(self) -> Any:
        """The Redactor, built on first use with the server's keys (lazy: Presidio is heavy)."""
        with self._lock:
            if self._redactor is None:
                with governed():  # the guard's own requests and imports are not governed reads
                    keys = self.client.keys()
                    from ..redaction import Detector, Redactor

                    pem = keys.get("public_key_pem")
                    self._redactor = Redactor(
                        Detector(ner_model=self.ner_model),
                        pseudonym_key=bytes.fromhex(keys["pseudonym_key"]),
                        public_key_pem=pem.encode() if pem else None,
                    )
            return self._redactor


class _FrameRedaction:
    """Redacts one reader's result (a frame, a dict of frames, or an iterator of chunks)."""

    def __init__(self, guard: Guard, rules: dict[str, dict], reader: str, governed_: list, kwargs: dict, lineage: Any):
        self.guard, self.rules, self.reader = guard, rules, reader
        self.governed, self.kwargs, self.lineage = governed_, kwargs, lineage
        self.derived: dict[str, str] = {}
        if lineage is not None:
            from .sql import derived_columns

            self.derived, problems = derived_columns(lineage, set(rules))
            if problems:
                self.refuse("it cannot redact this query's result by column name: " + "; ".join(problems)
                            + ". Select the columns by name (with an alias for any expression)")

    def refuse(self, why: str):
        first = self.governed[0][1]
        for target, d in self.governed:
            self.guard.report(read_entry(d, self.reader, target, rows=0, effect="deny",
                                     note="refused: the result could not be redacted"))
        raise GuardDenied(
            f"{first.get('dataset')!r} ({first.get('label')} data) must be redacted before you see it, and "
            f"jupyter_guard refused this read because {why}. Nothing was returned.",
            decision=first,
        )

    def result(self, result: Any) -> Any:
        pd = _pandas()
        if pd is not None and isinstance(result, pd.DataFrame):
            return self.frame(result, report=True)
        if isinstance(result, dict) and pd is not None and all(isinstance(v, pd.DataFrame) for v in result.values()):
            return {k: self.frame(v, report=True) for k, v in result.items()}  # read_excel(sheet_name=None)
        if isinstance(result, list) and pd is not None and all(isinstance(v, pd.DataFrame) for v in result):
            return [self.frame(v, report=True) for v in result]  # read_html
        if _is_dask_frame(result):
            return self.partitions(result)
        if _is_spark_frame(result):
            return self.spark(result)
        if hasattr(result, "__next__") or hasattr(result, "get_chunk"):
            for target, d in self.governed:
                self.guard.report(read_entry(d, self.reader, target, rows=None, chunked=True))
            return RedactingChunks(result, self)
        self.refuse(f"{self.reader} returned a {type(result).__name__}, and only pandas DataFrames can be "
                    "redacted; read it as a DataFrame")

    def partitions(self, ddf: Any) -> Any:
        """A Dask frame: the same column rules, applied per partition on the workers, lazily.
        Nothing unredacted is handed back: every partition passes through the redaction."""
        columns = self.match(ddf)  # the frame's columns are known before anything is computed
        try:
            with governed():
                from ..redaction.frame import PartitionRedaction

                red = self.guard.redactor()
                redact = PartitionRedaction(columns, pseudonym_key=red.pseudonym_key, ner_model=self.guard.ner_model)
                out = ddf.map_partitions(redact, meta=redact(ddf._meta))
        except GuardDenied:
            raise
        except Exception as e:  # an encrypt rule, a meta that cannot be built: never return it unredacted
            self.refuse(f"it cannot be redacted per partition ({type(e).__name__}: {e})")
        for target, d in self.governed:
            entry = read_entry(d, self.reader, target, rows=None)
            entry["note"] = "redacted per partition on the workers, as they compute"
            if d.get("effect") == "redact":
                entry["columns"] = {c["name"]: c.get("rule") for c in columns}
            self.guard.report(entry)
        return out

    def spark(self, sdf: Any) -> Any:
        """A Spark frame: the column rules applied to each Arrow batch on the executors
        (``mapInPandas``), lazily. Redacted columns become strings; a ruled column that is not
        in the frame (a CSV read without ``header=True`` names them _c0, _c1...) is refused."""
        columns = self.match(sdf)
        missing = getattr(self, "missing", [])
        if missing and any(re.fullmatch(r"_c\d+", str(c)) for c in sdf.columns):  # Spark's names for no header
            self.refuse(f"the catalog's redacted column(s) {', '.join(missing)} are not in this Spark frame "
                        f"(its columns: {', '.join(map(str, sdf.columns[:20]))}); read with the file's header "
                        "(header=True) so they can be found")
        try:
            with governed():
                from pyspark.sql.types import StringType, StructField, StructType

                from ..redaction.frame import PartitionRedaction

                red = self.guard.redactor()
                redact = PartitionRedaction(columns, pseudonym_key=red.pseudonym_key, ner_model=self.guard.ner_model)
                ruled = {c["name"]: c.get("rule") or "mask" for c in columns}
                schema = StructType([
                    StructField(f.name, StringType(), True) if ruled.get(f.name, "keep") != "keep" else f
                    for f in sdf.schema.fields if ruled.get(f.name) != "drop"
                ])

                def batches(frames, redact=redact):
                    for frame in frames:
                        yield redact(frame)

                out = sdf.mapInPandas(batches, schema)
        except GuardDenied:
            raise
        except Exception as e:  # never hand back a frame that would compute unredacted
            self.refuse(f"it cannot be redacted on the executors ({type(e).__name__}: {e})")
        for target, d in self.governed:
            entry = read_entry(d, self.reader, target, rows=None)
            entry["note"] = "redacted per batch on the executors, as they compute"
            if d.get("effect") == "redact":
                entry["columns"] = dict(ruled)
            self.guard.report(entry)
        return out

    def frame(self, df: Any, *, report: bool) -> Any:
        columns = self.match(df)
        try:
            with governed():
                out, rep = self.guard.redactor().redact_frame(df, columns)
        except GuardDenied:
            raise
        except Exception as e:  # RedactionError, KeyRequired, anything: never return unredacted data
            self.refuse(f"redaction failed ({type(e).__name__}: {e})")
        details = rep.to_dict() if hasattr(rep, "to_dict") else dict(rep)
        if report:
            self._report(details)
        return out

    def match(self, df: Any) -> list[dict]:
        """The column rules, named as the frame names its columns."""
        names = [c for c in df.columns]
        by_lower: dict[str, list] = {}
        for c in names:
            if isinstance(c, str):
                by_lower.setdefault(c.lower(), []).append(c)
        out, missing = [], []
        for rule_name, rule in self.rules.items():
            if rule_name in names:
                hits = [rule_name]
            else:
                hits = by_lower.get(rule_name.lower(), [])  # SQL and spreadsheets vary the case
            if not hits:
                missing.append(rule_name)
            out.extend({**rule, "name": h} for h in hits)
        for out_name, source in self.derived.items():
            for h in by_lower.get(out_name, []):
                if not any(o["name"] == h for o in out):
                    out.append({**self.rules[source], "name": h})
        index = None if _is_spark_frame(df) else getattr(df, "index", None)  # Spark frames have no index
        index_names = {str(n).lower() for n in getattr(index, "names", None) or [] if n is not None}
        in_index = sorted(r for r in self.rules if r.lower() in index_names)
        if in_index:
            self.refuse(f"the redacted column(s) {', '.join(in_index)} were read into the index "
                        "(index_col); read without index_col and set the index afterwards")
        renaming = [a for a in RENAMING_ARGS if a in self.kwargs and not _default_arg(a, self.kwargs[a])]
        if missing and renaming:
            self.refuse(f"{'/'.join(renaming)}= renames or shifts columns, so the catalog's column names "
                        f"({', '.join(missing)}) cannot be found; read with the file's own header row and "
                        "rename afterwards")
        self.missing = missing
        return out

    def _report(self, details: dict) -> None:
        """One report entry per decision; the redaction's counts go on the first redacting one."""
        columns = details.get("columns") or {}
        missing = getattr(self, "missing", [])
        first = True
        for target, d in self.governed:
            entry = read_entry(d, self.reader, target, rows=details.get("rows"))
            if d.get("effect") == "redact":
                own = {str(c.get("name")).lower() for c in d.get("columns") or ()}
                entry["columns"] = {c: rule for c, rule in columns.items() if self._source(c) in own}
                if first:
                    entry["entity_counts"] = details.get("entity_counts") or {}
                    entry["cells"] = details.get("cells")
                    if details.get("wrapped_keys"):
                        entry["wrapped_keys"] = details["wrapped_keys"]
                    first = False
                if [m for m in missing if m.lower() in own]:
                    entry["missing_columns"] = [m for m in missing if m.lower() in own]
            self.guard.report(entry)

    def _source(self, column: Any) -> str:
        """The ruled column a result column's values come from (itself, or through an SQL alias)."""
        name = str(column).lower()
        return self.derived.get(name, name)


class RedactingChunks:
    """An iterator of chunks (``chunksize=`` / ``iterator=True``) that redacts each chunk."""

    def __init__(self, inner: Any, redaction: _FrameRedaction):
        self._inner = inner
        self._redaction = redaction

    def _one(self, chunk: Any) -> Any:
        out = self._redaction.frame(chunk, report=False)
        return out

    def __iter__(self):
        return self

    def __next__(self):
        return self._one(next(self._inner))

    def get_chunk(self, size: int | None = None):
        return self._one(self._inner.get_chunk(size))

    def read(self, nrows: int | None = None):
        return self._one(self._inner.read(nrows))

    def __enter__(self):
        if hasattr(self._inner, "__enter__"):
            self._inner.__enter__()
        return self

    def __exit__(self, *exc):
        if hasattr(self._inner, "__exit__"):
            return self._inner.__exit__(*exc)
        return None

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _default_arg(name: str, value: Any) -> bool:
    """True when a renaming argument is given with a value that renames nothing."""
    if name == "header":
        return (isinstance(value, str) and value == "infer") or (type(value) is int and value == 0)
    return value is None or (name == "skiprows" and isinstance(value, int) and value == 0)


#: DataFrame.attrs key: the catalog datasets a frame was read from (pandas carries attrs through
#: most operations; a frame written to a file makes that file governed as the most sensitive)
SOURCES = "jupyter_guard_sources"


def _attrs(frame: Any) -> dict | None:
    """A frame's attrs: pandas' own, or for a Dask frame its meta's (which its operations carry)."""
    if _is_dask_frame(frame):
        frame = frame._meta
    elif _is_spark_frame(frame):
        return None
    attrs = getattr(frame, "attrs", None)
    return attrs if isinstance(attrs, dict) else None


def with_sources(frame: Any, datasets: list[str]) -> Any:
    """``frame`` marked as made from ``datasets`` (added to what it already carries)."""
    attrs = _attrs(frame)
    if not datasets or attrs is None:
        return frame
    attrs[SOURCES] = sorted(set(attrs.get(SOURCES) or ()) | set(datasets))
    return frame


def sources_of(frame: Any) -> list[str]:
    attrs = _attrs(frame)
    found = attrs.get(SOURCES) if attrs is not None else None
    return [str(n) for n in found] if isinstance(found, (list, tuple)) else []


def _input_files(sdf: Any) -> list[str]:
    try:
        return list(sdf.inputFiles())
    except Exception:  # noqa: BLE001 - a plan without file scans (a table in memory)
        return []


def spark_sources(guard: Any, sdf: Any) -> list[str]:
    """The datasets a Spark frame was read from, by its plan's input files."""
    return sorted({n for f in _input_files(sdf) for n in guard.spark_inputs.get(f, ())})


def _is_spark_frame(value: Any) -> bool:
    return type(value).__module__.startswith("pyspark.sql") and hasattr(value, "mapInPandas")


def _is_dask_frame(value: Any) -> bool:
    return type(value).__module__.startswith("dask") and hasattr(value, "map_partitions") and hasattr(value, "_meta")


def _pandas():
    import sys

    return sys.modules.get("pandas")


def _merge_rules(decisions: list[dict]) -> dict[str, dict]:
    rules: dict[str, dict] = {}
    for d in decisions:
        for col in d.get("columns") or ():
            name = col.get("name")
            if not isinstance(name, str):
                continue
            old = rules.get(name)
            if old is None or RULE_STRICTNESS.get(col.get("rule"), 9) > RULE_STRICTNESS.get(old.get("rule"), 9):
                rules[name] = dict(col)
    return rules


def _rows(result: Any) -> int | None:
    pd = _pandas()
    if pd is not None and isinstance(result, (pd.DataFrame, pd.Series)):
        return len(result)
    if isinstance(result, dict):
        try:
            return int(sum(len(v) for v in result.values()))
        except TypeError:
            return None
    height = getattr(result, "height", None) if type(result).__name__ == "DataFrame" else None  # polars
    if isinstance(height, int):
        return height
    num_rows = getattr(result, "num_rows", None)  # pyarrow.Table
    return num_rows if isinstance(num_rows, int) else None
