"""PII detection with Presidio: a pattern tier always, an NER tier only where it can matter.

``Detector.analyze(text)`` is defined as:

1. pattern tier: what ``AnalyzerEngine.analyze`` over the blank pipeline finds for the
   requested pattern entities, computed only where something can be found: a Hyperscan pass
   over the text names the patterns that can match and survive (see .prefilter); texts it
   cannot vouch for (not ASCII, or a batch too small to pay for compiling it) take cheap
   necessary conditions instead (no digit: no SSN, phone, card, IBAN, date ...; no ``@``: no
   email; no ``.``: no URL). Then only those patterns, their validators, and Presidio's
   context enhancer where a context word occurs -- the findings are the same as running
   everything (checked against the reference engine in tests and benchmarks);
2. NER tier (only with ``ner_model`` and when PERSON/LOCATION/NRP are requested): the model's
   ``ner`` over every text with a letter, lower-case ones included (the small English model
   still finds about half of the lower-cased names, measured in docs/detection-quality.md;
   a name or place without a letter is dropped anyway, so letter-free texts skip the model);
3. Presidio's ``remove_duplicates`` over both, sorted by position.

``analyze_many`` returns exactly ``[analyze(t) for t in texts]`` but analyses each distinct
text once, tokenizes in batches (``nlp.pipe``) and runs the model batched, only on the
distinct texts with a letter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import regex
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS

from .engines import (
    DEFAULT_ENTITY_THRESHOLDS,
    NER_ENTITIES,
    BlankSpacyNlpEngine,
    NerSpacyNlpEngine,
    build_pattern_registry,
    entity_prefilters,
    ner_recognizer,
)
from .model import Finding
from .phones import phone_results
from .prefilter import Prefilter, threshold_for

log = logging.getLogger(__name__)

_LETTERS = regex.compile(r"\p{L}")
#: a batch at least this large compiles the Hyperscan prefilter (about a second, once per
#: process) when it is not compiled yet: the slow way costs about 0.5 ms a text
PREFILTER_MIN_TEXTS = 1000


def needs_ner(text: str) -> bool:
    """The NER tier's prefilter: could a finding of the model survive here? (findings_from
    drops a PERSON/LOCATION/NRP span without a letter)"""
    return _LETTERS.search(text) is not None


class Detector:
    """Finds PII spans in text. Thread-compatible (one per thread), no network, no downloads.

    ner_model: installed spaCy package for PERSON/LOCATION/NRP (e.g. "en_core_web_sm"); None
        means the pattern tier only. Loaded on first use, never downloaded.
    entities: the default entities to look for (None: everything the tiers support).
    score_threshold: Presidio's default threshold; ``entity_thresholds`` overrides it per
        entity (default: PHONE_NUMBER and US_SSN 0.4, see engines.DEFAULT_ENTITY_THRESHOLDS).
    recognizers_yaml: a Presidio recognizer-registry YAML replacing the predefined set.
    entry_points: also load recognizers from the ``jupyter_guard.recognizers`` group.
    own_recognizers: add jupyter_guard's own recognizers (card brands and lengths Presidio's
        pattern misses, dates written with month names; see ``recognizers``) to the predefined set.
    """

    def __init__(
        self,
        *,
        ner_model: str | None = None,
        entities: Sequence[str] | None = None,
        language: str = "en",
        score_threshold: float = 0.5,
        recognizers_yaml: str | None = None,
        entity_thresholds: dict[str, float] | None = None,
        entry_points: bool = True,
        batch_size: int = 256,
        own_recognizers: bool = True,
    ):
        self.language = language
        self.ner_model = ner_model
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.entity_thresholds = dict(DEFAULT_ENTITY_THRESHOLDS if entity_thresholds is None else entity_thresholds)
        self.registry = build_pattern_registry(language, recognizers_yaml, entry_points, self.entity_thresholds,
                                               own=own_recognizers)
        self.nlp_engine = BlankSpacyNlpEngine(language)
        self.nlp_engine.load()
        self.pattern_engine = AnalyzerEngine(
            registry=self.registry,
            nlp_engine=self.nlp_engine,
            supported_languages=[language],
            default_score_threshold=score_threshold,
            context_aware_enhancer=LemmaContextAwareEnhancer(),
        )
        self.pattern_entities = frozenset(self.pattern_engine.get_supported_entities(language))
        self.ner_entities = frozenset(NER_ENTITIES) if ner_model else frozenset()
        self._prefilters = entity_prefilters(self.registry, language)
        self._ner_engine: AnalyzerEngine | None = None
        self.entities = tuple(entities) if entities else None
        self._plans: dict = {}
        self.recognizers = self.registry.get_recognizers(language=language, all_fields=True)
        self._by_id = {r.id: r for r in self.recognizers}
        self._rec_sets: dict = {}
        self.prefilter = Prefilter(self.recognizers, score_threshold, self.pattern_engine.context_aware_enhancer)

    # -- configuration -------------------------------------------------------------------------

    @property
    def supported_entities(self) -> frozenset[str]:
        return self.pattern_entities | self.ner_entities

    @property
    def ner_engine(self) -> AnalyzerEngine:
        """The NER tier's engine, built (and its model loaded) on first use."""
        if self._ner_engine is None:
            nlp = NerSpacyNlpEngine(self.ner_model, self.language)
            nlp.load()
            rec = ner_recognizer(self.language)
            thresholds = {e: t for e, t in self.entity_thresholds.items() if e in NER_ENTITIES}
            if thresholds:
                rec.score_thresholds = thresholds
            self._ner_engine = AnalyzerEngine(
                registry=RecognizerRegistry(recognizers=[rec], supported_languages=[self.language]),
                nlp_engine=nlp,
                supported_languages=[self.language],
                default_score_threshold=self.score_threshold,
            )
        return self._ner_engine

    def reference_engine(self) -> AnalyzerEngine:
        """One plain Presidio engine with the same recognizers, thresholds and NLP engine:
        what a straightforward Presidio set-up would call once per text. ``analyze`` gives
        the same findings as its ``analyze(text, language, entities)`` (checked in the
        benchmarks and tests); it exists for that comparison."""
        recognizers = list(self.registry.recognizers)
        nlp = self.nlp_engine
        if self.ner_model:
            recognizers += list(self.ner_engine.registry.recognizers)
            nlp = self.ner_engine.nlp_engine
        return AnalyzerEngine(
            registry=RecognizerRegistry(recognizers=recognizers, supported_languages=[self.language]),
            nlp_engine=nlp,
            supported_languages=[self.language],
            default_score_threshold=self.score_threshold,
            context_aware_enhancer=LemmaContextAwareEnhancer(),
        )

    def requested(self, entities: Iterable[str] | None = None) -> list[str]:
        """The entities a call looks for, limited to what the tiers support (sorted)."""
        pattern, ner, _ = self._plan(entities)
        return sorted(set(pattern) | set(ner))

    def _plan(self, entities):
        key = None if entities is None else tuple(entities)
        plan = self._plans.get(key)
        if plan is None:
            wanted = key if key is not None else self.entities
            if wanted is None:
                wanted = sorted(self.supported_entities)
            wanted = list(dict.fromkeys(wanted))
            pattern = tuple(e for e in wanted if e in self.pattern_entities)
            ner = tuple(e for e in wanted if e in self.ner_entities)
            # group pattern entities by their prefilter so each regex runs once per text
            groups: dict = {}
            always = []
            for e in pattern:
                f = self._prefilters.get(e)
                if f is None:
                    always.append(e)
                else:
                    groups.setdefault(f, []).append(e)
            plan = (pattern, ner, (tuple(always), tuple((f, tuple(es)) for f, es in groups.items())))
            self._plans[key] = plan
        return plan

    @staticmethod
    def _pattern_subset(text: str, gates) -> list[str]:
        always, groups = gates
        out = list(always)
        for f, es in groups:
            if f.search(text):
                out.extend(es)
        return out

    # -- detection -----------------------------------------------------------------------------

    def analyze(self, text: str, entities: Iterable[str] | None = None) -> list[Finding]:
        """PII findings in one text, sorted by position. Non-strings have none."""
        if not isinstance(text, str) or not text:
            return []
        return self._analyze_unique([text], entities)[0]

    def analyze_many(self, texts: Iterable[str], entities: Iterable[str] | None = None) -> list[list[Finding]]:
        """``[self.analyze(t, entities) for t in texts]``, computed once per distinct text,
        with batched tokenization and batched NER on the texts that need it."""
        index: dict[str, int] = {}
        uniq: list[str] = []
        codes: list[int] = []
        for t in texts:
            if not isinstance(t, str) or not t:
                codes.append(-1)
                continue
            i = index.get(t)
            if i is None:
                i = index[t] = len(uniq)
                uniq.append(t)
            codes.append(i)
        found = self._analyze_unique(uniq, entities)
        return [list(found[c]) if c >= 0 else [] for c in codes]

    def warm(self) -> bool:
        """Compile the one-pass pattern prefilter now (else: on the first batch of
        ``PREFILTER_MIN_TEXTS`` texts). False when Hyperscan is unavailable."""
        return self.prefilter.compile()

    def _recognizers_for(self, entities) -> frozenset[int]:
        """Indexes of the pattern recognizers a request runs (Presidio's registry choice)."""
        key = tuple(entities)
        got = self._rec_sets.get(key)
        if got is None:
            wanted = set(entities)
            got = self._rec_sets[key] = frozenset(
                i for i, r in enumerate(self.recognizers) if wanted & set(r.supported_entities))
        return got

    def _analyze_unique(self, uniq: list[str], entities) -> list[list[Finding]]:
        pattern, ner, gates = self._plan(entities)
        raw: list[list] = [[] for _ in uniq]
        if pattern:
            self._pattern_tier(uniq, pattern, gates, raw)
        if ner:
            todo = [i for i, t in enumerate(uniq) if needs_ner(t)]
            if todo:
                engine = self.ner_engine
                ner_list = list(ner)
                docs = engine.nlp_engine.process_batch([uniq[i] for i in todo], self.language, batch_size=self.batch_size)
                for i, (_, art) in zip(todo, docs):
                    raw[i] += engine.analyze(uniq[i], self.language, entities=ner_list, nlp_artifacts=art)
        return [findings_from(r, t) if r else [] for r, t in zip(raw, uniq)]

    def _pattern_tier(self, uniq: list[str], pattern, gates, raw: list[list]) -> None:
        """Presidio's pattern recognizers on each text, run only where they can find something.

        Which: the prefilter's candidate patterns (one Hyperscan pass; see .prefilter) or, for
        texts it cannot vouch for, the cheap necessary conditions. How: a candidate pattern's
        regex, then its recognizer's ``validate_result``/``invalidate_result`` and scores, as
        ``PatternRecognizer.analyze`` does; other recognizers' own ``analyze``; Presidio's
        context enhancer only where a context word occurs (tokenizing only those texts);
        Presidio's thresholds. A text with an opaque recognizer gets ``AnalyzerEngine.analyze``
        itself. The findings are plain Presidio's (tests/redaction/test_prefilter.py)."""
        allowed = self._recognizers_for(pattern)
        pre = self.prefilter
        if len(uniq) >= PREFILTER_MIN_TEXTS or pre.ready:
            pre.compile()
        plans = pre.plans
        recs = self.recognizers
        full: list[tuple[int, list[str]]] = []  # texts for Presidio's own analyze
        enhance: list[int] = []  # texts whose results a context word may change
        per_text: dict[int, list[int]] = {}
        for i, (text, cand) in enumerate(zip(uniq, pre.candidates(uniq))):
            if cand is None:
                subset = set(self._pattern_subset(text, gates))
                cand = {}
                for k in allowed:
                    if subset & set(recs[k].supported_entities):
                        live = pre.live_patterns(k, text)
                        if live:
                            cand[k] = live
            chosen = [k for k in cand if k in allowed]
            if not chosen:
                continue
            if any(plans[k].opaque for k in chosen):
                full.append((i, sorted({e for k in chosen for e in recs[k].supported_entities} & set(pattern))))
                continue
            results = []
            lowered = None
            context = False
            for k in chosen:
                rec = recs[k]
                plan = plans[k]
                in_context = False
                if plan.context_words:
                    if lowered is None:
                        lowered = text.lower()
                    in_context = plan.mentioned(lowered)
                if plan.phone:
                    found = phone_results(rec, text)
                elif in_context or not plan.plain:
                    # Presidio's own call: its results carry what the context enhancer needs
                    found = rec.analyze(text, list(rec.supported_entities), None)
                    for r in found:
                        if not r.recognition_metadata:
                            r.recognition_metadata = {}
                        r.recognition_metadata.setdefault(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, rec.id)
                else:
                    found = _run_patterns(rec, cand[k], text)
                if found:
                    results += found
                    context = context or in_context
            if results:
                raw[i] = results
                per_text[i] = chosen
                if context:
                    enhance.append(i)
        if enhance:
            docs = self.nlp_engine.process_batch([uniq[i] for i in enhance], self.language, batch_size=self.batch_size)
            for i, (_, art) in zip(enhance, docs):
                raw[i] = self.pattern_engine._enhance_using_context(
                    uniq[i], raw[i], art, [recs[k] for k in per_text[i]], None)
        default = self.pattern_engine.default_score_threshold
        by_id = self._by_id
        for i in per_text:
            raw[i] = [r for r in raw[i] if r.score >= threshold_for(
                by_id[r.recognition_metadata[RecognizerResult.RECOGNIZER_IDENTIFIER_KEY]], r.entity_type, default)]
        if full:
            docs = self.nlp_engine.process_batch([uniq[i] for i, _ in full], self.language, batch_size=self.batch_size)
            for (i, ents), (_, art) in zip(full, docs):
                raw[i] = self.pattern_engine.analyze(uniq[i], self.language, entities=ents, nlp_artifacts=art)


_COMPILED_PATTERNS: dict = {}


def _run_patterns(rec: PatternRecognizer, patterns, text: str) -> list[RecognizerResult]:
    """``rec.analyze(text)`` restricted to ``patterns`` (the ones that can yield a finding
    here), without Presidio's explanation objects: the same regex and flags, the same empty-
    match, validation and invalidation rules, the same per-recognizer duplicate removal."""
    flags = rec.global_regex_flags
    entity = rec.supported_entities[0]
    rid = rec.id
    out = []
    for p in patterns:
        key = (p.regex, flags)
        compiled = _COMPILED_PATTERNS.get(key)
        if compiled is None:
            compiled = _COMPILED_PATTERNS[key] = regex.compile(p.regex, flags=flags)
        for m in compiled.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
            start, end = m.span()
            if start == end:
                continue
            current = text[start:end]
            score = p.score
            valid = rec.validate_result(current)
            if valid is not None:
                score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
            if rec.invalidate_result(current):
                score = EntityRecognizer.MIN_SCORE
            if score > EntityRecognizer.MIN_SCORE:
                out.append(RecognizerResult(entity, start, end, score,
                                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: rec.name,
                                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: rid}))
    return EntityRecognizer.remove_duplicates(out) if len(out) > 1 else out


_LETTER = regex.compile(r"\p{L}")


def findings_from(results, text: str) -> list[Finding]:
    """Presidio results -> findings, sorted by position:

    1. Presidio's ``remove_duplicates`` (within each entity type);
    2. a PERSON/LOCATION/NRP span without a single letter is dropped (the model sometimes
       tags "+1-305" as a group of people);
    3. across types, the anonymizer's conflict rule: a finding inside a longer finding of
       another type with at least its score, or on the same span as one with a higher
       score, is dropped (an e-mail's domain is not also a URL; an IP address is not also
       a phone number).
    """
    if not results:
        return []
    results = EntityRecognizer.remove_duplicates(results)
    out = [Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results
           if r.entity_type not in NER_ENTITIES or _LETTER.search(text, r.start, r.end)]
    if len(out) > 1:
        kept = []
        for f in out:
            if any(k.entity_type != f.entity_type and k.start <= f.start and f.end <= k.end
                   and ((k.end - k.start > f.end - f.start and k.score >= f.score) or k.score > f.score)
                   for k in out):
                continue
            kept.append(f)
        out = kept
    out.sort(key=lambda f: (f.start, f.end, f.entity_type, -f.score))
    return out


