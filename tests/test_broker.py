"""The broker's core (jupyter_guard.broker) without a server: tickets, what a read may ask,
and the property that matters most — a brokered read returns exactly the frame the in-kernel
path returns for the same data and rules (real Presidio, real pyarrow, random frames)."""

from __future__ import annotations

import io
import textwrap

import pandas as pd
import pytest
from conftest import write_catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_guard.broker import BrokeredRead, BrokerError, IncompleteRead, ReadSpec, Tickets, read_stream
from jupyter_guard.errors import CatalogError
from jupyter_guard.governor import load_governance
from jupyter_guard.redaction import Detector, Redactor

KEY = bytes(range(32))
DATASETS = """\
datasets:
  - name: people
    label: restricted
    access: brokered
    steward: Dana Steward <dana@example.org>
    locations: [data/people.parquet, data/people.csv, data/parts/*.parquet]
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
      city: {entity: LOCATION, rule: drop}
  - name: other
    label: internal
    steward: Ops <ops@example.org>
    locations: [data/parts/other.parquet]
"""
POLICY = """\
roles: {researcher: {users: [rita]}}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - {name: r, labels: [restricted, internal], actions: [read], effect: redact}
"""


@pytest.fixture(scope="module")
def redactor():
    return Redactor(Detector(), pseudonym_key=KEY)


@pytest.fixture
def gov(tmp_path):
    (tmp_path / "data" / "parts").mkdir(parents=True)
    return load_governance(write_catalog(tmp_path / "catalog", DATASETS, POLICY), tmp_path)


def grant(gov, tmp_path, target: str, effect: str = "redact", dataset: str = "people"):
    tickets = Tickets()
    return tickets.redeem(tickets.issue(user="rita", dataset=dataset, target=str(tmp_path / target), effect=effect,
                                        audit_seq=7), user="rita")


def brokered(gov, g, spec: ReadSpec, redactor):
    read = BrokeredRead(gov.catalog, g, spec, lambda: redactor).check()
    table, report = read_stream(io.BytesIO(b"".join(read.chunks())))
    return table, report


# -- tickets ---------------------------------------------------------------------------------


def test_a_ticket_is_one_read_of_one_user_for_a_minute():
    now = [1000.0]
    tickets = Tickets(ttl=60, clock=lambda: now[0])
    t = tickets.issue(user="rita", dataset="people", target="/d/p.csv", effect="redact", audit_seq=3)
    with pytest.raises(BrokerError, match="issued to rita, not to omar"):
        tickets.redeem(t, user="omar")
    g = tickets.redeem(t, user="rita")
    assert (g.user, g.dataset, g.target, g.effect, g.audit_seq) == ("rita", "people", "/d/p.csv", "redact", 3)
    with pytest.raises(BrokerError, match="already used"):
        tickets.redeem(t, user="rita")
    late = tickets.issue(user="rita", dataset="people", target="/d/p.csv", effect="redact", audit_seq=4)
    now[0] += 61
    with pytest.raises(BrokerError, match="expired"):
        tickets.redeem(late, user=None)
    payload, mac = late.split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["e"], data["x"] = "allow", now[0] + 60  # a raw read for longer: the MAC no longer fits
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode() + "." + mac
    with pytest.raises(BrokerError, match="not one the guard issued"):
        tickets.redeem(forged, user=None)
    with pytest.raises(BrokerError, match="not one the guard issued"):
        Tickets().redeem(tickets.issue(user="rita", dataset="d", target="t", effect="allow", audit_seq=None), user=None)


def test_what_a_read_may_ask_is_checked_before_anything_is_read():
    with pytest.raises(BrokerError, match="format csv, parquet, feather"):
        ReadSpec.from_body({"format": "excel"})
    with pytest.raises(BrokerError, match="does not take converters"):
        ReadSpec.from_body({"format": "csv", "options": {"converters": {}}})
    with pytest.raises(BrokerError, match="does not take sep"):
        ReadSpec.from_body({"format": "parquet", "options": {"sep": ";"}})
    with pytest.raises(BrokerError, match="is not \\[column, op, value\\]"):
        ReadSpec.from_body({"format": "parquet", "filters": [["age", "~", 3]]})
    spec = ReadSpec.from_body({"format": "parquet", "filters": [[["a", "=", 1]], [["b", "in", [1, 2]]]]})
    assert spec.filters == ((("a", "=", 1),), (("b", "in", (1, 2)),))


def test_a_read_touches_only_files_of_its_dataset_and_no_filter_reveals_a_redacted_column(gov, tmp_path, redactor):
    pd.DataFrame({"id": [1]}).to_parquet(tmp_path / "data" / "parts" / "a.parquet")
    pd.DataFrame({"id": [2]}).to_parquet(tmp_path / "data" / "parts" / "other.parquet")  # another dataset's file
    with pytest.raises(BrokerError, match="belongs to 'other', not to 'people'"):
        BrokeredRead(gov.catalog, grant(gov, tmp_path, "data/parts/*.parquet"), ReadSpec("parquet"),
                     lambda: redactor).check()
    with pytest.raises(BrokerError, match="row filter on ssn"):
        BrokeredRead(gov.catalog, grant(gov, tmp_path, "data/people.parquet"),
                     ReadSpec("parquet", filters=((("ssn", "=", "1"),),)), lambda: redactor).check()
    with pytest.raises(BrokerError, match="does not exist"):
        BrokeredRead(gov.catalog, grant(gov, tmp_path, "data/people.parquet"), ReadSpec("parquet"),
                     lambda: redactor).check()


def test_a_stream_without_its_trailer_returns_nothing(gov, tmp_path, redactor):
    frame = pd.DataFrame({"id": range(1000), "ssn": ["123-45-6789"] * 1000})
    frame.to_parquet(tmp_path / "data" / "people.parquet")
    read = BrokeredRead(gov.catalog, grant(gov, tmp_path, "data/people.parquet"), ReadSpec("parquet", batch_rows=100),
                        lambda: redactor).check()
    body = b"".join(read.chunks())
    table, report = read_stream(io.BytesIO(body))
    assert table.num_rows == 1000 and report["rows"] == 1000 and report["columns"] == {"ssn": "mask"}
    for cut in (len(body) // 3, len(body) - 10):
        with pytest.raises(IncompleteRead, match="nothing was returned"):
            read_stream(io.BytesIO(body[:cut]))


def test_catalog_access_and_brokered_labels_are_checked_with_file_and_line(tmp_path):
    bad = DATASETS.replace("access: brokered", "access: sometimes")
    with pytest.raises(CatalogError) as e:
        load_governance(write_catalog(tmp_path / "c1", bad, POLICY), tmp_path)
    assert "datasets.yaml:4" in str(e.value) and "access must be one of direct, brokered" in str(e.value)
    policy = POLICY.replace("defaults: {unlabeled: allow, no_rule: deny}",
                            "defaults:\n  unlabeled: allow\n  brokered_labels: [secret]")
    with pytest.raises(CatalogError) as e:
        load_governance(write_catalog(tmp_path / "c2", DATASETS, policy), tmp_path)
    assert "policy.yaml:4" in str(e.value) and "brokered_labels is a list of labels" in str(e.value)


# -- the property: brokered == in-kernel ---------------------------------------------------

TEXT = st.sampled_from(["Call 212-555-0187 today", "mail ann.lee@example.com", "nothing here", "", "SSN 123-45-6789",
                        "Seen in Paris by Dr. Ada Byron", "ünïcode ✓ text"])
ROW = st.fixed_dictionaries({
    "id": st.integers(-10**6, 10**6),
    "ssn": st.one_of(st.none(), st.from_regex(r"\d{3}-\d{2}-\d{4}", fullmatch=True)),
    "email": st.one_of(st.none(), st.emails()),
    "notes": st.one_of(st.none(), TEXT),
    "city": st.sampled_from(["Springfield", "Oslo", None]),
    "score": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32)),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=0, max_size=40), batch=st.integers(1, 17), fmt=st.sampled_from(["parquet", "csv"]))
def test_a_brokered_read_equals_the_in_kernel_redaction(gov, tmp_path, redactor, rows, batch, fmt):
    columns = ["id", "ssn", "email", "notes", "city", "score"]
    frame = pd.DataFrame(rows, columns=columns)
    path = tmp_path / "data" / f"people.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        direct = pd.read_parquet(path)
    else:
        frame.to_csv(path, index=False)
        direct = pd.read_csv(path)
    rules = [{"name": c.column, "entity": c.entity, "rule": c.rule} for c in gov.catalog.datasets["people"].columns]
    expected, _ = redactor.redact_frame(direct, rules)
    table, report = brokered(gov, grant(gov, tmp_path, f"data/people.{fmt}"), ReadSpec(fmt, batch_rows=batch),
                             redactor)
    got = table.to_pandas() if table is not None else pd.DataFrame(columns=expected.columns)
    assert report["rows"] == len(frame)
    if fmt == "csv" and len(frame) > batch:
        # CSV chunks infer their types one by one (an all-empty chunk reads as float): values must match
        pd.testing.assert_frame_equal(got.astype(object).where(got.notna(), None),
                                      expected.astype(object).where(expected.notna(), None), check_dtype=False)
    elif len(frame):
        pd.testing.assert_frame_equal(_nulls(got), _nulls(expected.reset_index(drop=True)))
    assert "city" not in got.columns  # dropped by the broker


def _nulls(frame):
    """An all-missing column is NaN in one path and None (Arrow's null type) in the other: one spelling."""
    out = frame.copy()
    for c in out.columns:
        if out[c].isna().all():
            out[c] = pd.Series([None] * len(out), dtype=object)
    return out


def test_projection_reads_only_the_columns_asked_for(gov, tmp_path, redactor):
    frame = pd.DataFrame({"id": range(50), "ssn": ["123-45-6789"] * 50, "email": ["a@b.org"] * 50,
                          "blob": ["x" * 1000] * 50})
    frame.to_parquet(tmp_path / "data" / "people.parquet", index=False)
    table, report = brokered(gov, grant(gov, tmp_path, "data/people.parquet"),
                             ReadSpec("parquet", columns=("id", "email"), filters=((("id", "<", 10),),)), redactor)
    assert table.column_names == ["id", "email"] and table.num_rows == 10
    assert report["columns"] == {"email": "hash"}
    assert all(v.startswith("PSN_") for v in table.column("email").to_pylist())


def test_a_dataset_gone_from_the_catalog_or_an_encrypt_rule_is_refused(gov, tmp_path, redactor):
    g = grant(gov, tmp_path, "data/people.parquet", dataset="gone")
    with pytest.raises(BrokerError, match="no longer in the catalog"):
        BrokeredRead(gov.catalog, g, ReadSpec("parquet"), lambda: redactor).check()
    text = textwrap.dedent(DATASETS).replace("rule: drop", "rule: encrypt")
    gov2 = load_governance(write_catalog(tmp_path / "c3", text, POLICY), tmp_path)
    pd.DataFrame({"id": [1]}).to_parquet(tmp_path / "data" / "people.parquet")
    with pytest.raises(BrokerError, match="encrypt column rule"):
        BrokeredRead(gov2.catalog, grant(gov2, tmp_path, "data/people.parquet"), ReadSpec("parquet"),
                     lambda: redactor).check()


def test_a_brokered_query_is_checked_again_by_the_guard(tmp_path, redactor):
    """The kernel names the tables it decided; the guard parses the query itself, so a request that
    sneaks another table in, or a result it cannot redact by column, is refused before running."""
    import sqlite3

    db = tmp_path / "clinic.db"
    with sqlite3.connect(db) as con:
        con.execute("create table patients (id integer, ssn text)")
        con.execute("insert into patients values (1, '123-45-6789')")
        con.execute("create table staff (id integer, ssn text)")
    datasets = f"""\
datasets:
  - name: pts
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [{{table: clinic.main.patients}}]
    columns: {{ssn: {{entity: US_SSN, rule: mask}}}}
  - name: staff
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [{{table: clinic.main.staff}}]
sources:
  - name: clinic
    label: restricted
    access: brokered
    steward: Dana Steward <dana@example.org>
    url: sqlite:///{db}
"""
    gov = load_governance(write_catalog(tmp_path / "cat", datasets, POLICY), tmp_path)
    from jupyter_guard.broker import BrokeredSqlRead

    tickets = Tickets()
    g = tickets.redeem(tickets.issue(user="rita", dataset="pts", target="clinic.main.patients", effect="redact",
                                     audit_seq=1), user=None)

    def sql(query):
        spec = ReadSpec.from_body({"format": "sql", "query": query, "source": "clinic"})
        return BrokeredSqlRead(gov.catalog, [g], spec, lambda: redactor, lambda name: f"sqlite:///{db}")

    with pytest.raises(BrokerError, match="clinic.main.staff \\('staff'\\) was not decided"):
        sql("select p.ssn, s.ssn as x from patients p join staff s on p.id = s.id").check()
    with pytest.raises(BrokerError, match="cannot be redacted column by column"):
        sql("select ssn from patients union select 'x'").check()
    read = sql("select id, ssn as s from patients").check()
    table, report = read_stream(io.BytesIO(b"".join(read.chunks())))
    assert table.column("s").to_pylist() == ["***-**-6789"] and report["columns"] == {"s": "mask"}
