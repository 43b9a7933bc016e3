"""Redacting a notebook's outputs for export: PII and secrets replaced, unscannable outputs withheld.

``redact_notebook(nb, plan)`` returns a new notebook (the input is not touched) in which

* every text output is scanned -- stream text, ``text/plain``, ``text/html`` (text nodes,
  comments and quoted attribute values; entities decoded for detection, the markup kept),
  ``text/markdown``, ``text/latex``, other ``text/*``, ``application/javascript``,
  ``application/json`` (every string, keys included), error names, values and tracebacks
  (ANSI colour codes removed for detection, spans replaced in the coloured original) -- and
  each PII span becomes ``<ENTITY>`` (``&lt;ENTITY&gt;`` in HTML and markdown, so it shows as
  text), each detected secret ``<SECRET>``;
* every occurrence of a value of ``plan.known_secrets`` (and its URL/JSON/repr-escaped
  spellings) becomes ``***`` anywhere in the notebook -- outputs, sources, metadata;
* the outputs of cells in ``plan.blocked_cells`` are replaced by one placeholder output;
* an output that cannot be scanned (``image/*``, PDF, widget views, unknown MIME types or
  output types) is replaced by a placeholder when ``plan.drop_unscannable`` (and the
  notebook's saved widget state is dropped);
* an output larger than ``plan.max_output_bytes`` or nested deeper than ``MAX_DEPTH`` is
  replaced by a placeholder -- it is never exported unscanned;
* a first markdown cell says the document was redacted, under which policy, with counts, and
  ``nb.metadata["jupyter_guard"]["export"]`` records the same.

The result is a pure function of the notebook and the plan (no time, no random ids), so the
server and ``jupyter nbconvert`` with :class:`jupyter_guard.nbconvert.GuardPreprocessor` give
identical bytes.

Speed: all text is cut into lines (HTML into text nodes), each *distinct* line is analysed
once (``Detector.analyze_many``: dedup and batched tokenization), and the replacement of a
distinct line is computed once. Lines are also cut at runs of two or more spaces or tabs
(the columns of a printed DataFrame), so a value repeated across rows and outputs is analysed
once. Secret detection (detect-secrets, ~0.4 ms a line) runs only on distinct pieces that
could hold a secret (``scan_secrets.SECRET_HINT``: a token of 16+ characters, ``://``, a keyword such as
``password`` or ``key``): every detector of detect-secrets needs one of those.
"""

from __future__ import annotations

import copy
import html
import json
import re
import threading
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import nbformat

from ..errors import GuardError
from ..masking import known_pattern

GUARD_METADATA_KEY = "jupyter_guard"
HEADER_CELL_ID = "jupyter-guard-export"
MAX_DEPTH = 100  # an output nested deeper than this is withheld (never walked recursively)
KNOWN_SECRET_MASK = "***"
SECRET_ENTITY = "SECRET"
#: entities not replaced in code cells' sources: attribute access (df.head) reads as a URL
CODE_SAFE = frozenset({"URL"})
DEEP_MARK = "\x00jupyter_guard: nested too deeply, cut on reading"

TEXT_JSON = "application/json"
SCANNED_MIME = ("text/", "application/javascript")
OUTPUT_TYPES = ("stream", "error", "execute_result", "display_data", "update_display_data")

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_HTML_SPLIT = re.compile(r"(<!--.*?(?:-->|\Z)|<[^<>]*>)", re.DOTALL)  # text, tag, text, tag, ... text
_HTML_ATTR = re.compile(r"""(=\s*)(["'])(.*?)\2""", re.DOTALL)
# text is cut into lines, and lines at runs of 2+ spaces or tabs (the columns of a printed table)
_COLUMN_GAP = re.compile(r"( {2,}|\t+)")


class ExportError(GuardError):
    """A notebook cannot be read or exported (not JSON, not UTF-8, not a valid notebook)."""


@dataclass(frozen=True)
class ExportPlan:
    """What an export does, decided by the policy (the server) or given on the command line."""

    policy_note: str
    blocked_cells: frozenset[str] = frozenset()
    drop_unscannable: bool = True
    scan: bool = True
    known_secrets: tuple[str, ...] = ()
    max_output_bytes: int = 10_000_000
    #: also redact PII written in cell sources (``df[df.ssn == "536-80-4398"]``)
    scan_sources: bool = True

    def to_metadata(self) -> dict:
        """The plan as JSON for ``nb.metadata["jupyter_guard"]["export_plan"]``, without the
        known secrets (those never go into a notebook)."""
        return {
            "policy_note": self.policy_note,
            "blocked_cells": sorted(self.blocked_cells),
            "drop_unscannable": bool(self.drop_unscannable),
            "scan": bool(self.scan),
            "max_output_bytes": int(self.max_output_bytes),
            "scan_sources": bool(self.scan_sources),
        }

    @classmethod
    def from_metadata(cls, data: dict, **overrides) -> ExportPlan:
        """A plan from ``to_metadata()`` output (unknown keys ignored; bad types: ExportError)."""
        if not isinstance(data, dict):
            raise ExportError("the notebook's export plan is not a JSON object")
        try:
            kw = {
                "policy_note": str(data.get("policy_note", "")),
                "blocked_cells": frozenset(str(c) for c in data.get("blocked_cells", ()) or ()),
                "drop_unscannable": bool(data.get("drop_unscannable", True)),
                "scan": bool(data.get("scan", True)),
                "max_output_bytes": int(data.get("max_output_bytes", 10_000_000)),
                "scan_sources": bool(data.get("scan_sources", True)),
            }
        except (TypeError, ValueError) as e:
            raise ExportError(f"the notebook's export plan is invalid: {e}") from None
        kw.update(overrides)
        return cls(**kw)


@dataclass
class ExportReport:
    """What a redaction did: counts only, never values.

    outputs_scanned: outputs whose text was scanned and kept (redacted where needed);
    outputs_removed: outputs replaced by a placeholder (blocked cell, unscannable, too large,
    nested too deeply); cells_blocked: cells of ``plan.blocked_cells`` present in the notebook;
    entity_counts: PII spans replaced, per entity; secrets_masked: detected secrets and
    occurrences of known secrets replaced.
    """

    outputs_scanned: int = 0
    outputs_removed: int = 0
    cells_blocked: int = 0
    entity_counts: dict[str, int] = field(default_factory=dict)
    secrets_masked: int = 0

    def to_dict(self) -> dict:
        return {
            "outputs_scanned": self.outputs_scanned,
            "outputs_removed": self.outputs_removed,
            "cells_blocked": self.cells_blocked,
            "entity_counts": dict(sorted(self.entity_counts.items())),
            "secrets_masked": self.secrets_masked,
        }


# -- reading and writing --------------------------------------------------------------------


def load_notebook(data: bytes | str) -> nbformat.NotebookNode:
    """A notebook (nbformat 4; nbformat 3 is upgraded) from file content.

    Raises ExportError naming the problem (not UTF-8, JSON error with line and column, nested
    too deeply, not a notebook, unsupported version, invalid against the schema). Cells
    without ids (nbformat 3, or 4.5+ files missing them) get ``cell-<index>`` ids, so the
    result does not depend on chance.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ExportError(f"not a notebook: not UTF-8 text (bad byte at offset {e.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise ExportError(f"not a notebook: expected bytes or text, got {type(data).__name__}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"not a notebook: JSON error at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        try:
            text = _cut_deep(text)
            raw = json.loads(text)
        except (RecursionError, json.JSONDecodeError):
            raise ExportError("not a notebook that can be read: its JSON is nested too deeply") from None
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise ExportError("not a notebook: no `nbformat` version in the JSON object")
    major = raw.get("nbformat")
    if major not in (3, 4):
        raise ExportError(f"unsupported notebook format: nbformat {major!r} (3 and 4 are read)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.versions[major].to_notebook_json(raw, minor=raw.get("nbformat_minor", 0))
            if major == 3:
                nb = nbformat.convert(nb, 4)
                for i, cell in enumerate(nb.get("cells", ())):
                    cell["id"] = f"cell-{i}"
            elif nb.get("nbformat_minor", 0) >= 5:
                used = {c.get("id") for c in nb.get("cells", ()) if isinstance(c, dict)}
                for i, cell in enumerate(nb.get("cells", ())):
                    if isinstance(cell, dict) and "id" not in cell:
                        new = f"cell-{i}"
                        while new in used:
                            new += "-x"
                        cell["id"] = new
                        used.add(new)
            nbformat.validate(nb)
    except nbformat.ValidationError as e:
        raise ExportError(f"not a valid notebook: {_short(e.message)}") from None
    except RecursionError:
        raise ExportError("not a notebook that can be read: its JSON is nested too deeply") from None
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ExportError(f"not a valid notebook: {_short(str(e))}") from None
    return nb


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_CUT_DEPTH = 200  # JSON depth (from the top of the file) below which values are cut on reading


def _cut_deep(text: str) -> str:
    """``text`` with every JSON array or object that starts deeper than _CUT_DEPTH replaced by
    the string DEEP_MARK (Python's parser stops near 1,000 levels; a notebook's own structure
    is under 10). An output holding the mark is withheld, so what was cut is never exported."""
    out, last, depth, cut = [], 0, 0, None
    mark = json.dumps(DEEP_MARK)
    for m in _JSON_TOKEN.finditer(text):
        t = m.group()
        if t[0] == '"':
            continue
        if t in "[{":
            depth += 1
            if depth > _CUT_DEPTH and cut is None:
                cut = m.start()
        else:
            if depth == _CUT_DEPTH + 1 and cut is not None:
                out.append(text[last:cut])
                out.append(mark)
                last, cut = m.end(), None
            depth -= 1
    out.append(text[last:])
    return "".join(out)


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


def dumps_notebook(nb: nbformat.NotebookNode) -> str:
    """The notebook as ``.ipynb`` text, exactly as nbconvert's ``--to notebook`` writes it."""
    out = nbformat.writes(nb, version=4)
    return out if out.endswith("\n") else out + "\n"


# -- detection --------------------------------------------------------------------------------

_DETECTOR = None
_DETECTOR_LOCK = threading.Lock()
_DEFAULT_USE = threading.Lock()


def default_detector():
    """One shared pattern-tier Detector (built on first use)."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from ..redaction.detector import Detector

            _DETECTOR = Detector()
        return _DETECTOR


# -- pass 1: outputs -> templates -------------------------------------------------------------
#
# A text value becomes a _Tpl: its units (lines of plain text or markdown; text nodes and tags
# of HTML) in order. Each *distinct* unit is then cut into segments once: a segment is a tuple
# (orig, det, mode) whose detection text ``det`` is scanned and whose ``orig`` is rewritten by
# ``mode`` ("text": tags <E>, ANSI-aware; "md": tags &lt;E&gt;; "html"/"attr": det is the
# unescaped text, rewritten then escaped again); everything else in a unit is kept as is.

_ATOMS = (int, float, bool, type(None))


class _Tpl:
    __slots__ = ("kind", "units")

    def __init__(self, kind: str, units: list[str]):
        self.kind = kind  # "text" | "md" | "htmldoc"
        self.units = units


class _Withheld(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _measure(value, max_bytes: int) -> None:
    """Raise _Withheld if ``value`` is nested deeper than MAX_DEPTH or bigger than max_bytes
    (characters of its strings, a lower bound of its UTF-8 bytes). Iterative: never recurses."""
    size = 0
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, str):
            if v == DEEP_MARK:
                raise _Withheld("deep")
            size += len(v)
        elif isinstance(v, dict):
            if d >= MAX_DEPTH:
                raise _Withheld("deep")
            for k, x in v.items():
                size += len(k) if isinstance(k, str) else 8
                stack.append((x, d + 1))
        elif isinstance(v, (list, tuple)):
            if d >= MAX_DEPTH:
                raise _Withheld("deep")
            stack.extend((x, d + 1) for x in v)
        else:
            size += 8
        if size > max_bytes:
            raise _Withheld("large")


def _seg(orig: str, det: str, mode: str, out: list) -> None:
    if det and not det.isspace():
        out.append((orig, det, mode))
    else:
        out.append(orig)


def _text_unit(line: str, mode: str) -> list:
    """A line of plain text or markdown, cut at column gaps (and ANSI codes removed for
    detection in plain text)."""
    out: list = []
    body = line.rstrip("\r\n")
    if body:
        pieces = _COLUMN_GAP.split(body) if ("  " in body or "\t" in body) else (body,)
        for k, piece in enumerate(pieces):
            if k % 2 or not piece:
                out.append(piece)
            else:
                det = _ANSI.sub("", piece) if (mode == "text" and "\x1b" in piece) else piece
                _seg(piece, det, mode, out)
    if len(body) < len(line):
        out.append(line[len(body):])
    return out


def _html_text_unit(text: str, out: list | None = None) -> list:
    out = [] if out is None else out
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if body:
            _seg(body, html.unescape(body) if "&" in body else body, "html", out)
        if len(body) < len(line):
            out.append(line[len(body):])
    return out


def _tag_unit(tag: str) -> list:
    out: list = []
    if tag.startswith("<!--"):
        body_end = len(tag) - 3 if tag.endswith("-->") and len(tag) >= 7 else len(tag)
        out.append("<!--")
        _html_text_unit(tag[4:body_end], out)
        out.append(tag[body_end:])
        return out
    p = 0
    for a in _HTML_ATTR.finditer(tag):
        out.append(tag[p:a.start(3)])
        val = a.group(3)
        if val:
            _seg(val, html.unescape(val) if "&" in val else val, "attr", out)
        p = a.end(3)
    out.append(tag[p:])
    return out


_UNIT_KINDS = ("text", "md", "html", "tag", "code")


class _Pass:
    def __init__(self, plan: ExportPlan):
        self.plan = plan
        self.scan = plan.scan
        self.known = known_pattern(plan.known_secrets)
        self.known_count = 0
        self.units: dict[str, dict[str, None]] = {k: {} for k in _UNIT_KINDS}  # distinct units, in order

    # known secrets: plain replacement wherever they occur
    def mask(self, s: str) -> str:
        if self.known is not None and s:
            s, n = self.known.subn(KNOWN_SECRET_MASK, s)
            self.known_count += n
        return s

    def mask_tree(self, v):
        """A deep copy of JSON-like ``v`` with known secrets masked in every string."""
        if isinstance(v, str):
            return self.mask(v)
        if isinstance(v, dict):
            return type(v)((self.mask(k) if isinstance(k, str) else k, self.mask_tree(x)) for k, x in v.items())
        if isinstance(v, list):
            return [self.mask_tree(x) for x in v]
        return v if isinstance(v, _ATOMS) else copy.deepcopy(v)

    def _masked(self, value):
        """A text value (str or list of str) as one string with known secrets masked, and
        whether to scan it further (non-text values pass through unscanned)."""
        if isinstance(value, list):
            value = "".join(v for v in value if isinstance(v, str))
        if not isinstance(value, str):
            return value, False
        return self.mask(value), self.scan

    def text(self, value, mode: str = "text"):
        """Template of a plain text (or markdown) value: str or list of str."""
        value, scan = self._masked(value)
        if not scan:
            return value
        lines = value.splitlines(keepends=True)
        self.units[mode].update(dict.fromkeys(lines))
        return _Tpl(mode, lines)

    def html(self, value):
        value, scan = self._masked(value)
        if not scan:
            return value
        pieces = _HTML_SPLIT.split(value)
        self.units["html"].update(dict.fromkeys(pieces[0::2]))
        self.units["tag"].update(dict.fromkeys(t for t in pieces[1::2] if '"' in t or "'" in t or t.startswith("<!--")))
        return _Tpl("htmldoc", pieces)

    def json(self, v):
        """Template tree of a JSON value: every string (keys too) becomes a template."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {(_KeyTpl(self.text(k)) if isinstance(k, str) else k): self.json(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.json(x) for x in v]
        return v if isinstance(v, _ATOMS) else copy.deepcopy(v)

    def cut(self) -> tuple[dict, list[str]]:
        """Each distinct unit cut into segments (only units that have one), and the distinct
        detection texts of all segments."""
        cut_units: dict[str, dict[str, list]] = {k: {} for k in _UNIT_KINDS}
        dets: dict[str, None] = {}
        for kind, units in self.units.items():
            table = cut_units[kind]
            for unit in units:
                if kind == "html":
                    parts = _html_text_unit(unit)
                elif kind == "tag":
                    parts = _tag_unit(unit)
                else:
                    parts = _text_unit(unit, kind)
                segs = [x[1] for x in parts if not isinstance(x, str)]
                if segs:
                    table[unit] = parts
                    dets.update(dict.fromkeys(segs))
        return cut_units, list(dets)


class _KeyTpl:
    """A dict key to be rendered (keys must stay hashable while templates are lists)."""

    __slots__ = ("tpl",)

    def __init__(self, tpl):
        self.tpl = tpl


def _unscannable(mime: str) -> bool:
    if mime == TEXT_JSON:
        return False
    return not any(mime.startswith(p) for p in SCANNED_MIME) or mime == "text/uri-list"


def _placeholder(reason: str, detail: str) -> nbformat.NotebookNode:
    text = f"[jupyter_guard] {detail}"
    return nbformat.from_dict({
        "output_type": "display_data",
        "data": {"text/plain": text, "text/markdown": f"*{html.escape(text, quote=False)}*"},
        "metadata": {GUARD_METADATA_KEY: {"withheld": reason}},
    })


_REASONS = {
    "deep": "an output was withheld: it is nested too deeply to be scanned",
    "large": "an output was withheld: it is larger than the export limit ({limit} bytes) and was not scanned",
    "unscannable": "an output ({mimes}) was withheld: it cannot be scanned for personal data",
    "unknown": "an output of unknown type was withheld: it cannot be scanned for personal data",
}


def _template_output(p: _Pass, out) -> tuple[str, object]:
    """("kept", template tree) or ("withheld", placeholder)."""
    plan = p.plan
    try:
        _measure(out, plan.max_output_bytes)
        kind = out.get("output_type") if isinstance(out, dict) else None
        if kind not in OUTPUT_TYPES:
            if plan.drop_unscannable:
                raise _Withheld("unknown")
            return "raw", p.mask_tree(out)
        if kind == "stream":
            return "kept", {k: (p.text(v) if k == "text" else p.mask_tree(v)) for k, v in out.items()}
        if kind == "error":
            tpl = {}
            for k, v in out.items():
                if k in ("ename", "evalue"):
                    tpl[k] = p.text(v)
                elif k == "traceback" and isinstance(v, list):
                    tpl[k] = [p.text(t) for t in v]
                else:
                    tpl[k] = p.mask_tree(v)
            return "kept", tpl
        data = out.get("data")
        data = data if isinstance(data, dict) else {}
        bad = sorted(m for m in data if _unscannable(m))
        if bad and plan.drop_unscannable:
            raise _Withheld("unscannable:" + ", ".join(bad))
        tpl = {k: p.mask_tree(v) for k, v in out.items() if k != "data"}
        new_data = {}
        for mime, v in data.items():
            if mime == "text/html":
                new_data[mime] = p.html(v)
            elif mime == "text/markdown":
                new_data[mime] = p.text(v, "md")
            elif mime == TEXT_JSON:
                new_data[mime] = p.json(v) if p.scan else p.mask_tree(v)
            elif not _unscannable(mime):
                new_data[mime] = p.text(v)
            else:
                new_data[mime] = p.mask_tree(v)
        if "data" in out:
            tpl["data"] = new_data
        return "kept", tpl
    except _Withheld as w:
        reason, _, mimes = w.reason.partition(":")
        detail = _REASONS[reason].format(limit=plan.max_output_bytes, mimes=mimes)
        return "withheld", _placeholder(reason, detail)
    except RecursionError:
        return "withheld", _placeholder("deep", _REASONS["deep"])


# -- pass 2 and 3: detect, then render ----------------------------------------------------------


def _merge(spans):
    """Sorted, non-overlapping (start, end, entity): overlapping spans are joined (the first,
    longest one names the entity), so no part of either is left."""
    spans.sort(key=lambda s: (s[0], -s[1]))
    out = []
    for s, e, ent in spans:
        if out and s < out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e, out[-1][2])
            continue
        out.append((s, e, ent))
    return out


def _ansi_index(orig: str) -> list[int]:
    """Index in ``orig`` of each character of ``orig`` with the ANSI codes removed."""
    idx: list[int] = []
    last = 0
    for m in _ANSI.finditer(orig):
        idx.extend(range(last, m.start()))
        last = m.end()
    idx.extend(range(last, len(orig)))
    return idx


def _apply(text: str, spans, opening: str, closing: str) -> str:
    parts, pos = [], 0
    for s, e, ent in spans:
        parts.append(text[pos:s])
        parts.append(f"{opening}{ent}{closing}")
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


class _Renderer:
    def __init__(self, cut_units: dict, hits: dict):
        self.counts: Counter = Counter()
        # unit -> (rewritten unit, Counter of entities), for units with at least one hit
        self.done: dict[str, dict[str, tuple]] = {}
        for kind, table in cut_units.items():
            out = self.done[kind] = {}
            for unit, parts in table.items():
                if any(not isinstance(x, str) and x[1] in hits for x in parts):
                    counts: Counter = Counter()
                    text = "".join(x if isinstance(x, str) else self.segment(x, hits, counts) for x in parts)
                    out[unit] = (text, counts)

    @staticmethod
    def segment(seg, hits, counts: Counter) -> str:
        orig, det, mode = seg
        spans = hits.get(det)
        if not spans:
            return orig
        if mode == "code":  # a cell's source: "df.head" reads as a URL to Presidio; code keeps its names
            spans = [sp for sp in spans if sp[2] not in CODE_SAFE]
            if not spans:
                return orig
            mode = "text"
        counts.update(ent for _, _, ent in spans)
        if mode == "text":
            if det == orig:
                return _apply(orig, spans, "<", ">")
            idx = _ansi_index(orig)
            return _apply(orig, _merge([(idx[s], idx[e - 1] + 1, ent) for s, e, ent in spans]), "<", ">")
        if mode == "md":
            return _apply(orig, spans, "&lt;", "&gt;")
        if mode == "html":
            return html.escape(_apply(det, spans, "<", ">"), quote=False)
        return html.escape(_apply(det, spans, "<", ">"), quote=True)  # attr

    def units(self, kind: str, units: list[str]) -> str:
        done = self.done[kind]
        if not done:
            return "".join(units)
        out = []
        for u in units:
            hit = done.get(u)
            if hit is None:
                out.append(u)
            else:
                out.append(hit[0])
                self.counts.update(hit[1])
        return "".join(out)

    def htmldoc(self, pieces: list[str]) -> str:
        texts, tags = self.done["html"], self.done["tag"]
        if not texts and not tags:
            return "".join(pieces)
        out = []
        for i, u in enumerate(pieces):
            hit = (tags if i % 2 else texts).get(u)
            if hit is None:
                out.append(u)
            else:
                out.append(hit[0])
                self.counts.update(hit[1])
        return "".join(out)

    def tree(self, v):
        if isinstance(v, _Tpl):
            return self.htmldoc(v.units) if v.kind == "htmldoc" else self.units(v.kind, v.units)
        if isinstance(v, dict):
            return {(self.tree(k.tpl) if isinstance(k, _KeyTpl) else k): self.tree(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.tree(x) for x in v]
        return v


def _detect(segments: list[str], detector) -> dict:
    hits: dict[str, list] = {}
    if not segments:
        return hits
    found = detector.analyze_many(segments)
    for det, fs in zip(segments, found):
        if fs:
            hits[det] = [(f.start, f.end, f.entity_type) for f in fs]
    from ..scan_secrets import SecretScanner

    with SecretScanner() as scanner:
        for det in segments:  # find() skips what cannot hold a secret (scan_secrets.SECRET_HINT)
            sf = scanner.find(det)
            if sf:
                hits.setdefault(det, []).extend((f.start, f.end, SECRET_ENTITY) for f in sf)
    return {det: _merge(spans) for det, spans in hits.items()}


class ScanCache:
    """What detection found in recently scanned text, so each text is scanned once.

    The export gate assesses a notebook (its outputs' PII counts decide its label), then
    serves it redacted under the plan the assessment chose; a review in JupyterLab is followed
    by the download; seven formats of one notebook share its outputs. All of them cut the
    notebook into the same detection texts, so one cache keyed by the text (for one detector)
    makes each notebook content one scan: ``passes`` counts the detection passes that had
    anything new to analyse. Bounded by the characters it holds (least recently used out);
    it lives in the server's memory only, like the notebooks it serves.
    """

    def __init__(self, detector=None, *, max_chars: int = 32_000_000):
        self._detector = detector
        self.max_chars = max_chars
        self._hits: OrderedDict[str, list] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.passes = 0

    def detect(self, segments: list[str]) -> dict:
        with self._lock:  # one detector, one thread at a time; lookups are cheap
            missing = [s for s in segments if s not in self._hits]
            found = {}
            if missing:
                self.passes += 1
                found = _detect(missing, self._detector or default_detector())
            out = {}
            for s in segments:
                spans = found.get(s, []) if s in found or s not in self._hits else self._hits[s]
                if s in self._hits:
                    self._hits.move_to_end(s)
                else:
                    self._hits[s] = spans
                    self._chars += len(s)
                if spans:
                    out[s] = spans
            while self._chars > self.max_chars and self._hits:  # least recently used out
                old, _ = self._hits.popitem(last=False)
                self._chars -= len(old)
            return out


def redact_output(out: dict, cache: ScanCache, *, max_output_bytes: int = 10_000_000) -> tuple[dict, dict[str, int]]:
    """One output (an nbformat output dict: stream, display_data, execute_result, error) with
    its PII replaced, and the entity counts — the live output filter's unit of work. Images and
    other unscannable MIME types pass as they are; an output over ``max_output_bytes`` becomes
    a placeholder. Text seen before is not analysed again (``cache``)."""
    p = _Pass(ExportPlan("output filter", drop_unscannable=False, max_output_bytes=max_output_bytes,
                         scan_sources=False))
    state, tree = _template_output(p, out)
    if state == "withheld":
        return tree, {}
    cut_units, segments = p.cut()
    r = _Renderer(cut_units, cache.detect(segments) if segments else {})
    return r.tree(tree), dict(r.counts)


# -- the whole notebook -------------------------------------------------------------------------


def _header_source(plan: ExportPlan, report: ExportReport) -> str:
    counts = report.entity_counts
    replaced = ", ".join(f"{e} {n}" for e, n in sorted(counts.items())) or "none"
    return (
        "> **Redacted export.** jupyter_guard redacted this notebook's outputs before it was exported: "
        "personal data and secrets found in them were replaced by tags such as `<EMAIL_ADDRESS>`, "
        "and outputs that could not be scanned or are not allowed for export were withheld.\n"
        ">\n"
        f"> Policy: {plan.policy_note or 'not stated'}\n"
        ">\n"
        f"> Outputs scanned: {report.outputs_scanned}; outputs withheld: {report.outputs_removed}; "
        f"cells whose outputs were blocked: {report.cells_blocked}; "
        f"personal data replaced: {replaced}; secrets masked: {report.secrets_masked}.\n"
    )


def _is_header(cell) -> bool:
    md = cell.get("metadata") if isinstance(cell, dict) else None
    return isinstance(md, dict) and isinstance(md.get(GUARD_METADATA_KEY), dict) \
        and bool(md[GUARD_METADATA_KEY].get("export_header"))


def redact_notebook(nb: nbformat.NotebookNode, plan: ExportPlan, *, detector=None, cache: ScanCache | None = None):
    """A redacted copy of ``nb`` for export and what was done: ``(new_nb, ExportReport)``.

    ``detector``: a :class:`jupyter_guard.redaction.Detector` (default: a shared pattern-tier
    one, built on first use and used by one call at a time; give each thread its own for
    parallel exports). ``cache``: a :class:`ScanCache` (it brings its own detector): text it
    has seen is not scanned again. See the module docstring for what is redacted and how. Raises
    ExportError for something that is not a notebook.
    """
    if not isinstance(nb, dict) or not isinstance(nb.get("cells", []), list):
        raise ExportError("not a notebook: no `cells` list")
    report = ExportReport()
    p = _Pass(plan)
    cells_in = [c for c in nb.get("cells", []) if not (_is_header(c))]
    built = []  # per cell: (cell dict without outputs, [(state, tree)] or None)
    for cell in cells_in:
        if not isinstance(cell, dict):
            raise ExportError("not a notebook: a cell is not a JSON object")
        try:
            shell = {k: p.mask_tree(v) for k, v in cell.items() if k != "outputs"}
        except RecursionError:
            raise ExportError("not a notebook that can be exported: a cell's metadata is nested too deeply") from None
        if plan.scan and plan.scan_sources and isinstance(shell.get("source"), (str, list)):
            shell["source"] = p.text(shell["source"], "md" if cell.get("cell_type") == "markdown" else "code")
        outputs = cell.get("outputs")
        if outputs is None and cell.get("cell_type") != "code":
            built.append((shell, None))
            continue
        outputs = outputs if isinstance(outputs, list) else []
        if cell.get("id") in plan.blocked_cells:
            report.cells_blocked += 1
            items = []
            if outputs:
                report.outputs_removed += len(outputs)
                note = plan.policy_note or "the export policy"
                items.append(("withheld", _placeholder(
                    "blocked", f"the outputs of this cell were withheld: it read data that may not be exported ({note})")))
            built.append((shell, items))
            continue
        items = []
        for out in outputs:
            state, tree = _template_output(p, out)
            if state == "withheld":
                report.outputs_removed += 1
            elif state == "kept" and plan.scan:
                report.outputs_scanned += 1
            items.append((state, tree))
        built.append((shell, items))

    cut_units, segments = p.cut()
    hits = {}
    if plan.scan and segments:
        if cache is not None:
            hits = cache.detect(segments)
        elif detector is None:
            with _DEFAULT_USE:  # the shared Detector is used by one thread at a time
                hits = _detect(segments, default_detector())
        else:
            hits = _detect(segments, detector)
    r = _Renderer(cut_units, hits)

    new_cells = []
    for shell, items in built:
        if isinstance(shell.get("source"), _Tpl):
            shell["source"] = r.tree(shell["source"])
        cell = nbformat.from_dict(shell)
        if items is not None:
            cell["outputs"] = nbformat.from_dict([tree if state == "withheld" else r.tree(tree) for state, tree in items])
        new_cells.append(cell)

    report.secrets_masked = p.known_count + r.counts.pop(SECRET_ENTITY, 0)
    report.entity_counts = dict(sorted(r.counts.items()))

    try:
        top = {k: p.mask_tree(v) for k, v in nb.items() if k not in ("cells", "metadata")}
        meta = p.mask_tree(nb.get("metadata") or {})
    except RecursionError:
        raise ExportError("not a notebook that can be exported: its metadata is nested too deeply") from None
    if plan.drop_unscannable:
        meta.pop("widgets", None)
    guard = meta.get(GUARD_METADATA_KEY)
    guard = dict(guard) if isinstance(guard, dict) else {}
    if isinstance(guard.get("export_plan"), dict):
        guard["export_plan"] = {k: v for k, v in guard["export_plan"].items() if k != "known_secrets"}
    # the plan travels with the export (never the known secrets), so the same redaction can be
    # reproduced from the command line: jupyter nbconvert with GuardPreprocessor and these settings
    guard["export"] = {"redacted": True, "policy_note": plan.policy_note, "plan": plan.to_metadata(),
                       "counts": report.to_dict()}
    meta[GUARD_METADATA_KEY] = guard

    header = {"cell_type": "markdown", "metadata": {GUARD_METADATA_KEY: {"export_header": True}},
              "source": _header_source(plan, report)}
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) >= 5:
        header["id"] = HEADER_CELL_ID
        taken = {c.get("id") for c in new_cells}
        while header["id"] in taken:
            header["id"] += "-x"
    out = nbformat.from_dict({**top, "metadata": meta, "cells": [nbformat.from_dict(header), *new_cells]})
    return out, report
