"""PII detection with Presidio: a pattern tier always, an NER tier only where it can matter.

``Detector.analyze(text)`` is defined as:

1. pattern tier: ``AnalyzerEngine.analyze`` over the blank pipeline for the requested pattern
   entities whose cheap necessary condition the text meets (no digit: no SSN, phone, card,
   IBAN, date ...; no ``@``: no email; no ``.``: no URL) -- a recognizer that cannot match
   is not run, so the findings are the same as running it;
2. NER tier (only with ``ner_model`` and when PERSON/LOCATION/NRP are requested): the model's
   ``ner`` over the text, **only if the text has an upper-case letter** -- spaCy's small
   English models tag names and places by their capitalisation, so an all-lower-case text
   is treated as holding none (a documented heuristic, measured in docs/detection-quality.md);
3. Presidio's ``remove_duplicates`` over both, sorted by position.

``analyze_many`` returns exactly ``[analyze(t) for t in texts]`` but analyses each distinct
text once, tokenizes in batches (``nlp.pipe``) and runs the model batched, only on the
distinct texts that pass step 2's test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import regex
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

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

log = logging.getLogger(__name__)

_UPPER = regex.compile(r"\p{Lu}")


def needs_ner(text: str) -> bool:
    """The NER tier's prefilter: could spaCy find a name, place or group here?"""
    return _UPPER.search(text) is not None


class Detector:
    """Finds PII spans in text. Thread-compatible (one per thread), no network, no downloads.

    ner_model: installed spaCy package for PERSON/LOCATION/NRP (e.g. "en_core_web_sm"); None
        means the pattern tier only. Loaded on first use, never downloaded.
    entities: the default entities to look for (None: everything the tiers support).
    score_threshold: Presidio's default threshold; ``entity_thresholds`` overrides it per
        entity (default: PHONE_NUMBER 0.4, see engines.DEFAULT_ENTITY_THRESHOLDS).
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
        _, ner, gates = self._plan(entities)
        results = []
        sub = self._pattern_subset(text, gates)
        if sub:
            results += self.pattern_engine.analyze(text, self.language, entities=sub)
        if ner and needs_ner(text):
            results += self.ner_engine.analyze(text, self.language, entities=list(ner))
        return findings_from(results, text)

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

    def _analyze_unique(self, uniq: list[str], entities) -> list[list[Finding]]:
        _, ner, gates = self._plan(entities)
        raw: list[list] = [[] for _ in uniq]
        work = []  # (position, entities) for the pattern tier
        for i, t in enumerate(uniq):
            sub = self._pattern_subset(t, gates)
            if sub:
                work.append((i, sub))
        if work:
            docs = self.nlp_engine.process_batch([uniq[i] for i, _ in work], self.language, batch_size=self.batch_size)
            for (i, sub), (_, art) in zip(work, docs):
                raw[i] += self.pattern_engine.analyze(uniq[i], self.language, entities=sub, nlp_artifacts=art)
        if ner:
            todo = [i for i, t in enumerate(uniq) if needs_ner(t)]
            if todo:
                engine = self.ner_engine
                ner_list = list(ner)
                docs = engine.nlp_engine.process_batch([uniq[i] for i in todo], self.language, batch_size=self.batch_size)
                for i, (_, art) in zip(todo, docs):
                    raw[i] += engine.analyze(uniq[i], self.language, entities=ner_list, nlp_artifacts=art)
        return [findings_from(r, t) if r else [] for r, t in zip(raw, uniq)]


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


