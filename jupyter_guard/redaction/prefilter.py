"""Which recognizers can find anything in a text: one Hyperscan pass, then Presidio on candidates.

Presidio's ``AnalyzerEngine.analyze`` tokenizes every text and runs every recognizer's every
regex over it, one text at a time (about 0.5 ms for a 100-character sentence). Most texts hold
nothing, and most weak patterns cannot reach the threshold anyway. This module decides, for
each text, the recognizers whose findings can survive, without changing a single finding:

* every pattern of every recognizer is compiled into **one Hyperscan database** in prefilter
  mode (``HS_FLAG_PREFILTER``: Hyperscan matches a superset of the pattern, so lookarounds and
  back-references are approximated, never missed) and scanned once per text;
* a pattern that cannot reach its recognizer's threshold -- no validator that could raise it to
  1.0 and a score below the threshold even after the best context boost -- is left out: its
  matches are dropped by Presidio whatever happens (``doomed``);
* a pattern below the threshold that only context can lift counts only when one of its
  recognizer's context words occurs in the text (Presidio compares context words as
  substrings of the lower-cased tokens around the match, so absence from the text is proof);
* the phone recognizer (libphonenumber, not a pattern recognizer) counts when the text holds at
  least as many digits as the shortest valid number of any of its regions (``phones.
  fewest_digits``: 4 for Presidio's eight, Germany); it is then run by .phones, which spares
  libphonenumber the candidates that cannot be numbers.

A recognizer this module cannot reason about (its own ``analyze`` or context logic, regex
flags other than I/M/S, non-ASCII patterns, patterns Hyperscan rejects) is ``opaque``: it runs on
every text, the plain Presidio way. Texts that are not pure ASCII are not scanned here (Python's
Unicode classes and case folding differ from Hyperscan's ASCII ones): the caller falls back to
the cheap necessary conditions of ``engines.PREFILTERS``.

Equality with plain Presidio is the contract; tests/redaction/test_prefilter.py checks it
finding for finding (entity, span, score) on thousands of generated texts.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

from presidio_analyzer import EntityRecognizer, PatternRecognizer

from .phones import fewest_digits, is_presidio_phone_recognizer

log = logging.getLogger(__name__)

try:  # an optional accelerator: without it every text takes the cheap-condition path
    import hyperscan
except ImportError:  # pragma: no cover - hyperscan ships wheels for the platforms CI uses
    hyperscan = None

#: recognizer classes whose own ``analyze`` only runs their patterns (checked: a raw match of
#: one of ``patterns`` is necessary for any result)
PATTERN_DRIVEN = {"IbanRecognizer"}
#: a recognizer whose findings need one pattern's raw match: the others contain it (Presidio's
#: URL patterns are the non-schema one with a scheme and/or quotes around it)
NECESSARY_PATTERN = {"UrlRecognizer": "Non schema URL"}
_KNOWN_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL


@dataclass
class RecognizerPlan:
    index: int
    recognizer: EntityRecognizer
    opaque: bool = False
    #: (Presidio Pattern or None for the phone rule, regex for Hyperscan, needs a context word)
    #: -- empty with opaque
    scans: list = field(default_factory=list)
    #: the recognizer's context words, lower-cased (Presidio matches them as substrings)
    context_words: tuple = ()
    #: whether its ``analyze`` is PatternRecognizer's (so the detector may run single patterns)
    plain: bool = False
    #: Presidio's PhoneRecognizer (run by .phones, with its candidates remembered)
    phone: bool = False
    #: the patterns to run when a scan of this recognizer hits (None: the ones that hit)
    run_all: list | None = None

    @property
    def never(self) -> bool:
        """The recognizer never yields a finding (all its patterns are doomed)."""
        return not self.opaque and not self.scans

    def mentioned(self, lowered: str) -> bool:
        """Whether one of its context words occurs in ``lowered`` (the text, lower-cased): the
        condition for Presidio's context enhancer to change one of its scores."""
        return any(w in lowered for w in self.context_words)


def threshold_for(rec: EntityRecognizer, entity: str, default: float) -> float:
    """Presidio's threshold for one result (AnalyzerEngine.__get_result_score_threshold)."""
    t = rec.score_thresholds or {}
    if t.get(entity) is not None:
        return t[entity]
    if t.get("default") is not None:
        return t["default"]
    return default


def plan_recognizer(index: int, rec: EntityRecognizer, default_threshold: float, enhancer) -> RecognizerPlan:
    plan = RecognizerPlan(index, rec, context_words=tuple(sorted({w.lower() for w in rec.context or () if w})))
    cls = type(rec)
    if cls.enhance_using_context is not EntityRecognizer.enhance_using_context:
        plan.opaque = True
        return plan
    if is_presidio_phone_recognizer(rec):
        plan.phone = True
        fewest = min(fewest_digits(region) for region in rec.supported_regions)
        digits = "[^0-9]*".join(["[0-9]"] * fewest)
        plan.scans = [(None, digits, False)]
    elif isinstance(rec, PatternRecognizer) and (cls.analyze is PatternRecognizer.analyze
                                                 or cls.__name__ in PATTERN_DRIVEN):
        plan.plain = cls.analyze is PatternRecognizer.analyze
        flags = rec.global_regex_flags or 0
        if int(flags) & ~int(_KNOWN_FLAGS) & ~int(re.UNICODE) & ~_regex_default_flags():
            plan.opaque = True
            return plan
        validates = (cls.validate_result is not PatternRecognizer.validate_result)
        entity = rec.supported_entities[0]
        threshold = threshold_for(rec, entity, default_threshold)
        for p in rec.patterns:
            if not p.regex.isascii():
                plan.opaque = True
                return plan
            score = p.score
            if validates or score >= threshold:
                plan.scans.append((p, p.regex, False))
                continue
            boosted = min(1.0, max(score + enhancer.context_similarity_factor,
                                   enhancer.min_score_with_context_similarity))
            if rec.context and boosted >= threshold:
                plan.scans.append((p, p.regex, True))
            # else: doomed -- Presidio drops its matches whatever the context
        necessary = NECESSARY_PATTERN.get(cls.__name__)
        if (necessary and hasattr(cls, "PATTERNS") and [p.regex for p in rec.patterns] == [p.regex for p in cls.PATTERNS]
                and all(not ctx for _, _, ctx in plan.scans)):
            # scan for the one pattern the others contain; when it hits, run them all
            plan.run_all = [p for p, _, _ in plan.scans]
            plan.scans = [(p, rx, ctx) for p, rx, ctx in plan.scans if p.name == necessary]
    else:
        plan.opaque = True
    return plan


def _regex_default_flags() -> int:
    """Flags the ``regex`` module sets on its own (VERSION0 and friends) that change nothing."""
    try:
        import regex

        return int(regex.V0) | int(getattr(regex, "DEFAULT_VERSION", 0))
    except ImportError:  # pragma: no cover
        return 0


class HyperscanSet:
    """The compiled database; ``meta``: pattern id -> (recognizer index, Presidio Pattern or
    None, needs a context word)."""

    def __init__(self, entries: list[tuple[int, object, str, bool]]):
        self.meta = [(rec, pattern, ctx) for rec, pattern, _, ctx in entries]
        flags = (hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_DOTALL
                 | hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_SINGLEMATCH
                 | hyperscan.HS_FLAG_ALLOWEMPTY)
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(expressions=[rx.encode() for _, _, rx, _ in entries], ids=list(range(len(entries))),
                        elements=len(entries), flags=[flags] * len(entries))
        self._local = threading.local()  # Hyperscan scratch space is per thread

    @property
    def scratch(self):
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self.db)
        return scratch

    def scan(self, texts: list[str]) -> list[set[int] | None]:
        """Pattern ids that (may) match, per text; None for a text that is not ASCII. One
        Hyperscan call per text, each pattern reported once (``HS_FLAG_SINGLEMATCH``)."""
        out: list[set[int] | None] = []
        db, scratch = self.db, self.scratch
        for t in texts:
            if not t.isascii():
                out.append(None)
                continue
            hits: set[int] = set()
            db.scan(t.encode("ascii"), match_event_handler=_collect, context=hits, scratch=scratch)
            out.append(hits)
        return out


def _collect(pid, start, end, flags, hits):
    hits.add(pid)


_COMPILED: dict = {}
_COMPILE_LOCK = threading.Lock()


class Prefilter:
    """Per text, the recognizers to run; built once per registry (see the module docstring).

    ``candidates(texts)`` returns, per text, the recognizers to run and their patterns, or None
    for a text this prefilter cannot vouch for (not ASCII, or no Hyperscan): the caller checks
    those the slow way. Opaque recognizers are in every answer.
    """

    def __init__(self, recognizers: list[EntityRecognizer], default_threshold: float, enhancer):
        self.plans = [plan_recognizer(i, r, default_threshold, enhancer) for i, r in enumerate(recognizers)]
        self.opaque = tuple(p.index for p in self.plans if p.opaque)
        entries = [(p.index, pattern, rx, ctx) for p in self.plans if not p.opaque for pattern, rx, ctx in p.scans]
        self._entries = entries
        self._set: HyperscanSet | None = None
        self._failed = hyperscan is None

    @property
    def ready(self) -> bool:
        return self._set is not None

    def compile(self) -> bool:
        """Compile the database (about a second; shared by every Prefilter of the same patterns
        in the process). False when Hyperscan is missing or rejects a pattern."""
        if self._set is not None or self._failed:
            return self._set is not None
        key = tuple((rec, rx, ctx) for rec, _, rx, ctx in self._entries)
        with _COMPILE_LOCK:
            compiled = _COMPILED.get(key)
            if compiled is None:
                try:
                    compiled = HyperscanSet(self._entries)
                except Exception as e:  # a pattern Hyperscan cannot take: all texts go the slow way
                    log.warning("pattern prefilter unavailable (%s); scanning without it", e)
                    self._failed = True
                    return False
                _COMPILED[key] = compiled
        self._set = compiled
        return True

    def candidates(self, texts: list[str]) -> list[dict[int, list] | None]:
        """Per text: {recognizer index: the patterns that can yield a finding there (None for
        the phone rule and for opaque recognizers: run the recognizer whole)}, or None for a text
        this prefilter cannot vouch for (not ASCII, or not compiled)."""
        out: list[dict[int, list] | None] = []
        hs = self._set
        if hs is None:
            return [None] * len(texts)
        meta = hs.meta
        plans = self.plans
        opaque = {k: [None] for k in self.opaque}
        for text, hits in zip(texts, hs.scan(texts)):
            if hits is None:
                out.append(None)
                continue
            recs = dict(opaque)
            lowered = None
            for pid in sorted(hits):
                rec, pattern, needs_context = meta[pid]
                if needs_context:
                    if lowered is None:
                        lowered = text.lower()
                    if not plans[rec].mentioned(lowered):
                        continue
                run_all = plans[rec].run_all
                if run_all is not None:
                    recs[rec] = run_all
                else:
                    recs.setdefault(rec, []).append(pattern)
            out.append(recs)
        return out

    def live_patterns(self, index: int, text: str) -> list:
        """Without a scan: the patterns of recognizer ``index`` that can yield a finding in
        ``text`` by score and context alone ([None]: run it whole)."""
        plan = self.plans[index]
        if plan.opaque or not plan.plain:
            return [None]
        if plan.run_all is not None:
            return list(plan.run_all)
        lowered = None
        out = []
        for pattern, _, needs_context in plan.scans:
            if needs_context:
                if lowered is None:
                    lowered = text.lower()
                if not plan.mentioned(lowered):
                    continue
            out.append(pattern)
        return out
