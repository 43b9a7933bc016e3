"""The one-pass pattern prefilter (real Hyperscan, real Presidio): the findings are plain
Presidio's, finding for finding, while most texts are never given to a recognizer."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

from jupyter_guard.redaction import Detector
from jupyter_guard.redaction.detector import findings_from
from jupyter_guard.redaction.prefilter import plan_recognizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from detection_corpus import corpus  # noqa: E402


@pytest.fixture(scope="module")
def detector():
    d = Detector()
    assert d.warm(), "Hyperscan must be installed and take every predefined pattern"
    return d


@pytest.fixture(scope="module")
def reference(detector):
    return detector.reference_engine()


def plain(reference, texts, entities=None):
    return [findings_from(reference.analyze(t, "en", entities=entities), t) for t in texts]


FRAGMENTS = [
    "call", "phone", "ssn", "card", "visa", "date", "born", "driver license", "passport", "account",
    "email", "ip", "url", "iban", "the", "and", "notes", "Zoë", "café", "١٢٣٤", "\n",
    "536-22-1234", "078-05-1120", "212-555-0198", "(415) 555-2671", "+44 20 7946 0958", "+49 30 901820",
    "4111 1111 1111 1111", "5555555555554444", "2223003122003222", "4111111111111112",
    "ann.lee@example.org", "x@y", "10.0.0.1", "2001:db8::1", "256.1.1.1", "3.9.11", "v2.4",
    "12/31/1999", "2024-02-30", "March 3, 2024", "3rd of May", "In May", "12:30", "$12.50",
    "https://clinic.example.com/p/7", "www.site.co.uk", "'http://a.org'", "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000", "A1234567", "123456789", "912-70-1234", "00:1A:2B:3C:4D:5E",
    "123e4567-e89b-12d3-a456-426614174000", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "AB1234567",
]


def test_corpora_match_plain_presidio_and_most_texts_are_skipped(detector, reference):
    texts = corpus("notes", 60_000) + corpus("logs", 40_000)
    got = detector.analyze_many(texts)
    assert got == plain(reference, texts)
    assert sum(map(len, got)) > 100  # the corpora hold findings, so equality says something
    notes = corpus("notes", 60_000)
    candidates = detector.prefilter.candidates(notes)
    with_work = sum(1 for c in candidates if c)
    assert with_work < 0.3 * len(notes), f"{with_work} of {len(notes)} note lines went to recognizers"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12).map(" ".join),
                min_size=1, max_size=20))
def test_any_mix_of_values_and_context_words_matches_plain_presidio(detector, reference, texts):
    assert detector.analyze_many(texts) == plain(reference, texts)


def test_a_subset_of_entities_matches_plain_presidio(detector, reference):
    texts = corpus("logs", 20_000) + [" ".join(FRAGMENTS)]
    entities = ["US_SSN", "CREDIT_CARD", "URL", "DATE_TIME"]
    assert detector.analyze_many(texts, entities) == plain(reference, texts, entities)


def test_weak_patterns_count_only_with_their_context_words(detector, reference):
    # a 9-digit run is a passport/bank/SSN candidate of score 0.05..0.1: doomed whatever the
    # context, so it is not even scanned for; an ITIN of score 0.3 needs "itin"/"tax" nearby
    texts = ["order 912701234 shipped", "itin 912701234 on file", "tax id 912-70-1234", "ref 912-70-1234",
             "license A1234567", "room A1234567"]
    got = detector.analyze_many(texts)
    assert got == plain(reference, texts)
    kinds = [{f.entity_type for f in fs} for fs in got]
    assert kinds[0] == set() and "US_ITIN" in kinds[2]
    plans = {type(p.recognizer).__name__: p for p in detector.prefilter.plans}
    passport = plans["UsPassportRecognizer"]
    assert passport.never and not passport.scans
    itin = plans["UsItinRecognizer"]
    assert {needs for _, _, needs in itin.scans} == {True, False}  # weak: context; medium: always


def test_own_recognizers_are_planned_and_opaque_ones_run_on_every_text(monkeypatch):
    class Shouty(EntityRecognizer):  # its own analyze: the prefilter cannot reason about it
        def load(self):
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("SHOUT", 0, len(text), 0.9)] if text.isupper() and text.isalpha() else []

    code = PatternRecognizer(supported_entity="CODE", patterns=[Pattern("code", r"\bXK[A-Z]{4}\b", 0.9)])
    import jupyter_guard.redaction.detector as detector_module

    build = detector_module.build_pattern_registry

    def with_own(*a, **kw):  # what an entry point adds, without installing a package
        registry = build(*a, **kw)
        registry.add_recognizer(Shouty(supported_entities=["SHOUT"]))
        registry.add_recognizer(code)
        return registry

    monkeypatch.setattr(detector_module, "build_pattern_registry", with_own)
    det = Detector(entry_points=False)
    assert det.warm()
    kinds = {type(p.recognizer).__name__: p for p in det.prefilter.plans}
    assert kinds["Shouty"].opaque and not kinds["PatternRecognizer"].opaque
    texts = ["HELLO", "hello XKABCD there", "nothing here", "ann@example.org HELLO"]
    got = det.analyze_many(texts)
    assert got == plain(det.reference_engine(), texts)
    assert [sorted({f.entity_type for f in fs}) for fs in got] == [["SHOUT"], ["CODE"], [], ["EMAIL_ADDRESS"]]


def test_threads_share_the_database_not_the_scratch(detector, reference):
    texts = corpus("notes", 30_000)
    expected = plain(reference, texts[:200])
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(detector.prefilter.candidates(texts))
            results.append(detector.analyze_many(texts[:200]))
        except Exception as e:  # pragma: no cover - the failure this test looks for
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    scans = [r for r in results if len(r) == len(texts)]
    assert all(s == scans[0] for s in scans)
    assert all(r == expected for r in results if len(r) == 200)


def test_a_plan_needs_the_recognizers_own_logic_to_be_presidios(detector):
    class Boosting(PatternRecognizer):
        def enhance_using_context(self, *a, **kw):  # its own context logic
            return super().enhance_using_context(*a, **kw)

    rec = Boosting(supported_entity="X", patterns=[Pattern("x", r"\d{3}", 0.1)], context=["x"])
    assert plan_recognizer(0, rec, 0.5, detector.pattern_engine.context_aware_enhancer).opaque
    ascii_rec = PatternRecognizer(supported_entity="Y", patterns=[Pattern("y", "é\\d", 0.9)])
    assert plan_recognizer(0, ascii_rec, 0.5, detector.pattern_engine.context_aware_enhancer).opaque


PHONE_BITS = ["0", "1", "2", "44", "49", "555", "0198", "2671", "030", "901820", "20", "7946", "0958",
              "+", "(", ")", "-", ".", " ", "/", ":", "x", "ext", "T", "Z", "ms", "=", "rows", "2026-01-15",
              "14:05:18", "11 15", "0800", "011", "00", "#", "١٢", "٣٤", "A", "tel"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PHONE_BITS), min_size=1, max_size=16).map("".join))
def test_phone_numbers_are_libphonenumbers_own(detector, text):
    from jupyter_guard.redaction.phones import phone_results

    phone = next(r for r in detector.recognizers if type(r).__name__ == "PhoneRecognizer")
    spans = sorted((r.start, r.end, r.score) for r in phone.analyze(text, ["PHONE_NUMBER"]))
    assert sorted((r.start, r.end, r.score) for r in phone_results(phone, text)) == spans
    # and a second time, from the remembered decisions
    assert sorted((r.start, r.end, r.score) for r in phone_results(phone, text)) == spans


def test_short_numbers_are_not_parsed_but_counted(detector, monkeypatch):
    import phonenumbers.phonenumbermatcher as pnm

    from jupyter_guard.redaction import phones

    parsed = []
    real = pnm.parse
    monkeypatch.setattr(pnm, "parse", lambda *a, **kw: parsed.append(a[0]) or real(*a, **kw))
    phone = next(r for r in detector.recognizers if type(r).__name__ == "PhoneRecognizer")
    phones._MEMO.clear()
    assert phones.phone_results(phone, "took=58.5ms rows=861 at 14:05") == []
    assert parsed == []  # nothing there can be a number of any of the eight regions
    found = phones.phone_results(phone, "call (415) 555-2671 now")
    assert [(r.start, r.end) for r in found] == [(5, 19)] and parsed


def test_without_hyperscan_the_findings_are_the_same(monkeypatch, reference):
    # Linux on ARM has no hyperscan wheel: there every text takes the cheap-condition path
    from jupyter_guard.redaction import prefilter

    monkeypatch.setattr(prefilter, "hyperscan", None)
    det = Detector()
    assert not det.warm()
    texts = corpus("notes", 20_000) + corpus("logs", 10_000) + [" ".join(FRAGMENTS)]
    assert det.analyze_many(texts) == plain(reference, texts)
    assert not det.prefilter.ready


def test_phone_spans_on_corpora_are_libphonenumbers_own(detector):
    from jupyter_guard.redaction.phones import phone_results

    phone = next(r for r in detector.recognizers if type(r).__name__ == "PhoneRecognizer")
    texts = corpus("logs", 150_000) + corpus("notes", 150_000) + [
        "call +1 (415) 555-2671 / x 12 or 030 901820 ext. 5, fax 020 7946 0958; 2026-01-15 14:05:18",
        "tel 415-555-2671, 415-555-2672, 415-555-2673 and 555-0198 1-800-FLOWERS",
        # one candidate holding three numbers: after the first (an inner match) the matcher
        # searches on inside the candidate
        "lines 415-555-2671 415-555-2672 415-555-2673 today"]
    for text in texts:
        want = sorted((r.start, r.end) for r in phone.analyze(text, ["PHONE_NUMBER"]))
        assert sorted((r.start, r.end) for r in phone_results(phone, text)) == want, text
