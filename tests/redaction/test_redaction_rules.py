"""Column rules on real pandas frames: mask, replace, hash, encrypt, scan, drop, keep."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jupyter_guard.redaction import (
    KeyRequired,
    RedactionError,
    Redactor,
    decrypt_token,
    redact_frame,
)
from jupyter_guard.redaction.operators import mask_value, pseudonym

KEY = b"k" * 32


@pytest.fixture(scope="module")
def rsa_pair():
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pub, pem


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "ssn": ["536-22-1234", None, "536-22-1234", "401-55-9876"],
            "email": ["ann@example.org", "bob@example.org", np.nan, "ann@example.org"],
            "name": ["Ann Lee", "Bob Roy", "Ann Lee", None],
            "salary": [50_000, 60_000, 70_000, 80_000],
            "zip": ["02139", "10001", "94103", "60601"],
            "notes": ["Call Ann at 212-555-0198 or ann@example.org", None, "no pii here", "SSN 536-22-1234 on file"],
        }
    )


RULES = [
    {"name": "ssn", "entity": "US_SSN", "rule": "mask"},
    {"name": "email", "entity": "EMAIL_ADDRESS", "rule": "hash"},
    {"name": "name", "entity": "PERSON", "rule": "replace"},
    {"name": "salary", "entity": "SALARY", "rule": "drop"},
    {"name": "zip", "entity": "ZIP", "rule": "keep"},
    {"name": "notes", "entity": "FREE_TEXT", "rule": "scan"},
]


def test_every_rule_on_a_frame(frame):
    out, report = Redactor(pseudonym_key=KEY).redact_frame(frame, RULES)
    assert list(out.columns) == ["ssn", "email", "name", "zip", "notes"]  # salary dropped
    assert out["ssn"].tolist()[0] == "***-**-1234" and out["ssn"].tolist()[3] == "***-**-9876"
    assert out["email"][0] == out["email"][3] == pseudonym("ann@example.org", KEY)
    assert out["email"][0].startswith("PSN_") and len(out["email"][0]) == 20
    assert out["name"].tolist()[:3] == ["<PERSON>"] * 3
    assert out["zip"].tolist() == frame["zip"].tolist()
    assert out["notes"][0] == "Call Ann at <PHONE_NUMBER> or <EMAIL_ADDRESS>"
    assert out["notes"][2] == "no pii here"
    assert out["notes"][3] == "SSN <US_SSN> on file"
    assert report.columns == {"ssn": "mask", "email": "hash", "name": "replace", "salary": "drop", "zip": "keep",
                              "notes": "scan"}
    assert report.entity_counts == {"US_SSN": 3 + 1, "EMAIL_ADDRESS": 3 + 1, "PERSON": 3, "SALARY": 4,
                                    "PHONE_NUMBER": 1}
    assert report.rows == 4
    assert report.cells == 3 + 3 + 3 + 4 + 3  # non-null cells under a rule other than keep
    flat = repr(report.to_dict())
    for secret in ("536-22-1234", "ann@example.org", "Ann Lee", "212-555-0198", "50000"):
        assert secret not in flat
    assert frame["ssn"][0] == "536-22-1234"  # the input is not modified


def test_nan_and_none_stay_nan_and_non_strings_become_text(frame):
    frame["when"] = pd.to_datetime(["2024-01-02", None, "2024-03-04", "2024-05-06"])
    frame["num"] = [1.0, np.nan, 42.0, 7.5]
    rules = [{"name": "ssn", "entity": "US_SSN", "rule": "mask"}, {"name": "email", "entity": "E", "rule": "hash"},
             {"name": "when", "entity": "DATE_TIME", "rule": "mask"}, {"name": "num", "entity": "N", "rule": "hash"},
             {"name": "salary", "entity": "SALARY", "rule": "mask"}, {"name": "name", "entity": "PERSON", "rule": "replace"},
             {"name": "notes", "entity": "FREE_TEXT", "rule": "scan"}]
    out, _ = Redactor(pseudonym_key=KEY).redact_frame(frame, rules)
    for col, row in [("ssn", 1), ("email", 2), ("when", 1), ("num", 1), ("name", 3), ("notes", 1)]:
        assert isinstance(out[col][row], float) and math.isnan(out[col][row]), (col, row)
    assert out["when"][0] == "****-**-** **:**:**"
    assert out["num"][2] == pseudonym("42", KEY)  # 42.0 hashes as 42, like an int column
    assert out["salary"].tolist() == ["*****"] * 4


def test_hash_is_stable_across_instances_and_depends_on_the_key(frame):
    a, _ = Redactor(pseudonym_key=KEY).redact_frame(frame, RULES[1:2])
    b, _ = Redactor(pseudonym_key=KEY).redact_frame(frame.iloc[::-1].reset_index(drop=True), RULES[1:2])
    c, _ = Redactor(pseudonym_key=b"another key of 32 bytes........").redact_frame(frame, RULES[1:2])
    assert a["email"][0] == b["email"][0]  # same value, another read, same pseudonym: joins work
    assert a["email"][1] == b["email"][2]
    assert a["email"][0] != c["email"][0]
    assert a["email"][0] != a["email"][1]


def test_hash_and_encrypt_refuse_without_keys(frame):
    with pytest.raises(KeyRequired, match="pseudonym key"):
        Redactor().redact_frame(frame, RULES[1:2])
    with pytest.raises(KeyRequired, match="public key"):
        Redactor(pseudonym_key=KEY).redact_frame(frame, [{"name": "ssn", "entity": "US_SSN", "rule": "encrypt"}])
    with pytest.raises(RedactionError, match="at least 16 bytes"):
        Redactor(pseudonym_key=b"short")
    with pytest.raises(RedactionError, match="unknown rule"):
        Redactor().redact_frame(frame, [{"name": "ssn", "entity": "US_SSN", "rule": "shred"}])


def test_encrypt_round_trip_for_stewards(frame, rsa_pair):
    pub, priv = rsa_pair
    rules = [{"name": "ssn", "entity": "US_SSN", "rule": "encrypt"}, {"name": "salary", "entity": "SALARY", "rule": "encrypt"}]
    out, report = redact_frame(frame, rules, public_key_pem=pub)
    (key_id, wrapped), = report.wrapped_keys.items()
    token = out["ssn"][0]
    assert token.startswith(f"ENC1.{key_id}.") and "536" not in token
    assert decrypt_token(token, wrapped, priv) == "536-22-1234"
    assert decrypt_token(out["salary"][3], wrapped, priv) == "80000"
    assert isinstance(out["ssn"][1], float) and math.isnan(out["ssn"][1])
    # another call: another data key; a token does not open with the wrong wrapped key
    _, report2 = redact_frame(frame, rules, public_key_pem=pub)
    (key_id2, wrapped2), = report2.wrapped_keys.items()
    assert key_id2 != key_id
    with pytest.raises(RedactionError, match="cannot decrypt"):
        decrypt_token(token, wrapped2, priv)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(RedactionError, match="cannot decrypt"):
        decrypt_token(tampered, wrapped, priv)


def test_missing_columns_are_reported_and_ignored(frame):
    out, report = Redactor().redact_frame(frame, [{"name": "ghost", "entity": "US_SSN", "rule": "mask"},
                                                  {"name": "ssn", "entity": "US_SSN", "rule": "mask"}])
    assert report.missing_columns == ["ghost"]
    assert list(out.columns) == list(frame.columns)


def test_chunked_equals_unchunked(frame):
    big = pd.concat([frame] * 50, ignore_index=True)
    rules = [r for r in RULES]
    a, ra = Redactor(pseudonym_key=KEY).redact_frame(big, rules, chunk_rows=7)
    b, rb = Redactor(pseudonym_key=KEY).redact_frame(big, rules)
    pd.testing.assert_frame_equal(a, b)
    assert ra.to_dict() == rb.to_dict()


def test_mask_shapes():
    assert mask_value("536-22-1234", 4) == "***-**-1234"
    assert mask_value("4111 1111 1111 1111", 4) == "**** **** **** 1111"
    assert mask_value("12-34", 4) == "**-**"  # too short to show any digits
    assert mask_value("José Ñúñez") == "**** *****"
    assert mask_value("ann@example.org") == "***@*******.***"


def test_importing_the_package_loads_no_engine():
    """The kernel imports it in every kernel: Presidio, spaCy and pandas load on first use."""
    import subprocess
    import sys

    code = ("import sys, jupyter_guard.redaction, jupyter_guard.cli; "
            "print(sorted(m for m in ('presidio_analyzer', 'spacy', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_redact_text_passes_non_text_through():
    red = Redactor()
    assert red.redact_text("") == ("", {})
    assert red.redact_text(None) == (None, {})
    text, counts = red.redact_text("write to ann@example.org, ann@example.org")
    assert text == "write to <EMAIL_ADDRESS>, <EMAIL_ADDRESS>" and counts == {"EMAIL_ADDRESS": 2}
