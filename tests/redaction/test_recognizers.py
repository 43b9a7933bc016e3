"""jupyter_guard's own recognizers on a labelled set of our own (benchmarks/detection_set/
structured.py: arithmetic card numbers, template dates; no Faker, no Presidio test cases)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_guard.redaction import Detector
from jupyter_guard.redaction.recognizers import CardNumberRecognizer, WordDateRecognizer, card_brand, luhn_valid

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "detection_set"))
import structured  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="module")
def detector():
    return Detector(entry_points=False)


def test_every_card_brand_and_length_and_every_word_date_is_found_whole(detector):
    data = structured.cases()
    found = detector.analyze_many([c["text"] for c in data], ["CREDIT_CARD", "DATE_TIME"])
    missed = [(c["kind"], c["text"]) for c, fs in zip(data, found) for s, e, ent in c["spans"]
              if not any(f.entity_type == ent and f.start <= s and e <= f.end for f in fs)]
    assert missed == []
    false = [(c["text"], [(f.entity_type, c["text"][f.start:f.end]) for f in fs])
             for c, fs in zip(data, found) if not c["spans"] and fs]
    # Presidio's own dd.mm.yy pattern takes a version string for a date; ours does not
    assert false == []
    plain = Detector(entry_points=False, own_recognizers=False)
    assert [(f.entity_type, "version 3.9.11"[f.start:f.end]) for f in plain.analyze("version 3.9.11")] == [
        ("DATE_TIME", "3.9.11")]


def test_dotted_dates_are_found_and_versions_and_ip_parts_are_not(detector):
    for text, want in [("born 03.09.2011.", ["03.09.2011"]), ("on 3.9.2011", ["3.9.2011"]),
                       ("due 12.10.24, ok", ["12.10.24"]), ("version 3.9.11.", []), ("v2.8.97", []),
                       ("release 1.2.20", []), ("from 173.11.8.61 on", [])]:
        got = [text[f.start:f.end] for f in detector.analyze(text, ["DATE_TIME"])]
        assert got == want, text


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def test_presidio_alone_misses_them(detector):
    plain = Detector(entry_points=False, own_recognizers=False)
    maestro = _with_check_digit("561234567890123")  # Maestro 56, 16 digits
    visa19 = _with_check_digit("411111111111111111")  # Visa, 19 digits
    for text in ("card 2221 0000 0000 0009", f"card {maestro}", f"card {visa19}", "born March 3, 2024"):
        assert detector.analyze(text) and not plain.analyze(text), text


def test_the_registry_holds_them_as_presidio_recognizers(detector, tmp_path):
    names = {type(r).__name__ for r in detector.registry.recognizers}
    assert {"CardNumberRecognizer", "WordDateRecognizer", "StreetAddressRecognizer"} <= names
    # a registry YAML replaces the predefined set: then only what it lists
    yaml_file = tmp_path / "registry.yaml"
    yaml_file.write_text("supported_languages: [en]\nglobal_regex_flags: 26\nrecognizers:\n"
                         "  - name: EmailRecognizer\n    type: predefined\n")
    only = Detector(recognizers_yaml=str(yaml_file), entry_points=False)
    assert not {"CardNumberRecognizer", "WordDateRecognizer"} & {type(r).__name__ for r in only.registry.recognizers}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_a_card_counts_only_with_a_brand_prefix_and_a_luhn_check(digits):
    ok = CardNumberRecognizer().validate_result(digits)
    assert ok == (luhn_valid(digits) and card_brand(digits) is not None and len(set(digits)) > 1)


def test_a_month_name_alone_or_a_time_is_not_a_word_date():
    rec = WordDateRecognizer()
    for text in ("In May we met again", "March forward, team", "at 10:30", "June is hot"):
        assert rec.analyze(text, ["DATE_TIME"]) == [], text


def test_every_address_is_found_as_one_span_and_near_misses_are_not(detector):
    data = structured.address_cases()
    found = detector.analyze_many([c["text"] for c in data], ["LOCATION"])
    missed = [c["text"] for c, fs in zip(data, found) for s, e, _ in c["spans"]
              if not any(f.start <= s and e <= f.end for f in fs)]
    assert not missed, missed[:5]
    false = [c["text"] for c, fs in zip(data, found) if not c["spans"] and fs]
    assert not false, false
    plain = Detector(entry_points=False, own_recognizers=False)
    assert not any(plain.analyze_many([c["text"] for c in data], ["LOCATION"]))  # no model: no LOCATION at all


def test_an_address_does_not_run_on_into_the_sentence(detector):
    text = "She lives at 77 N Maple Ave, Apt 4B, Springfield, IL 62704 since May and likes it there."
    spans = [(f.entity_type, text[f.start:f.end]) for f in detector.analyze(text, ["LOCATION"])]
    assert spans == [("LOCATION", "77 N Maple Ave, Apt 4B, Springfield, IL 62704")]
    lower = "met at 9 market street today"
    assert [lower[f.start:f.end] for f in detector.analyze(lower, ["LOCATION"])] == ["9 market street"]
