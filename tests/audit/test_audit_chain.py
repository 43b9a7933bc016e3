"""The chain's building blocks: canonical payloads, sealing, decoding, the core's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_guard.audit import AuditEvent, AuditQuery
from jupyter_guard.audit.chain import (
    COLUMN_FIELDS,
    Sealer,
    VerifyRow,
    _dumps,
    build_payload,
    event_fields,
    genesis_mac,
    prepare_event,
    record_from_row,
    verify_rows,
)
from jupyter_guard.audit.model import format_time, parse_time

KEY = b"k" * 32

texts = st.text(max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
events = st.builds(
    AuditEvent,
    event_type=st.text(min_size=1, max_size=10),
    user=st.none() | texts,
    action=st.none() | texts,
    target=st.none() | texts,
    dataset=st.none() | texts,
    label=st.none() | texts,
    decision=st.none() | texts,
    reasons=st.lists(texts, max_size=3).map(tuple),
    purpose=st.none() | texts,
    justification=st.none() | texts,
    kernel_id=st.none() | texts,
    session_id=st.none() | texts,
    notebook=st.none() | texts,
    cell_id=st.none() | texts,
    msg_id=st.none() | texts,
    details=st.dictionaries(texts, json_values, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(event=events, seq=st.integers(1, 2**53), when=st.text(max_size=30))
def test_spliced_payload_is_the_canonical_json(event, seq, when):
    """The fast payload is byte for byte the compact sorted-key JSON of {seq, time, fields}."""
    full = dict(event_fields(event), seq=seq, time=when)
    assert build_payload(prepare_event(event).pieces, seq, when) == _dumps(full)
    assert json.loads(_dumps(full)) == json.loads(json.dumps(full))


@settings(max_examples=200, deadline=None)
@given(event=events)
def test_sealed_record_decodes_to_the_same_event(event):
    sealed = Sealer(KEY)(1, None, event)
    back = record_from_row(1, sealed.payload, sealed.prev_mac, sealed.mac)
    assert back.event.to_dict() == json.loads(json.dumps(event.to_dict()))
    assert back.time == sealed.record.time and back.mac == sealed.record.mac
    assert back.prev_mac == genesis_mac(KEY).hex()


def test_payload_is_stable_text():
    e = AuditEvent("decision", user="ana", reasons=("r",), details={"b": 1, "a": [1.5, None]})
    payload = build_payload(prepare_event(e).pieces, 7, "2024-01-01T00:00:00.000000Z")
    assert payload == (
        b'{"details":{"a":[1.5,null],"b":1},"event_type":"decision","reasons":["r"],"seq":7,'
        b'"time":"2024-01-01T00:00:00.000000Z","user":"ana"}'
    )


def test_non_json_details_are_refused_before_sealing():
    with pytest.raises(ValueError, match="not JSON"):
        prepare_event(AuditEvent("x", details={"f": float("nan")}))
    with pytest.raises(ValueError, match="not JSON"):
        prepare_event(AuditEvent("x", details={"s": {1, 2}}))


def test_sealer_chains_and_rejects_weak_keys():
    s = Sealer(KEY)
    a = s(1, None, AuditEvent("x"))
    b = s(2, a.mac, AuditEvent("y"))
    c = s(3, b.record.mac, AuditEvent("z"))  # hex works too
    assert b.prev_mac == a.mac and c.prev_mac == b.mac
    rows = [VerifyRow(x.record.seq, x.payload, x.prev_mac, x.mac, x.columns) for x in (a, b, c)]
    assert verify_rows(rows, KEY).ok
    assert len(a.columns) == len(COLUMN_FIELDS)
    with pytest.raises(ValueError):
        Sealer(b"short")
    with pytest.raises(TypeError):
        Sealer("a string key")  # type: ignore[arg-type]


def test_time_format():
    rec = Sealer(KEY)(1, None, AuditEvent("x")).record
    parsed = datetime.strptime(rec.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 5
    assert format_time(datetime(2024, 1, 2, 3, 4, 5, 6)) == "2024-01-02T03:04:05.000006Z"
    assert parse_time("2024-01-02T04:04:05+01:00") == "2024-01-02T03:04:05.000000Z"
    assert parse_time("2024-01-02T03:04:05Z") == "2024-01-02T03:04:05.000000Z"


def test_query_validation():
    with pytest.raises(ValueError):
        AuditQuery(limit=-1)
    assert AuditQuery(limit=None).limit is None


def test_core_imports_no_web_framework():
    code = (
        "import sys; import jupyter_guard.audit, jupyter_guard.credentials;"
        "bad = [m for m in ('tornado', 'jupyter_server') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(__import__("pathlib").Path(__file__).parents[2]),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
