"""Policy decisions: first matching rule, purposes, justification, roles, reasons and whom to ask."""

from __future__ import annotations

import pytest
from conftest import write_catalog

from jupyter_guard.errors import CatalogError
from jupyter_guard.governor import load_governance
from jupyter_guard.policy import MIN_JUSTIFICATION


@pytest.fixture
def gov(tmp_path):
    return load_governance(write_catalog(tmp_path / "cat"), tmp_path)


def ds(gov, name):
    return gov.catalog.datasets[name]


def test_roles_come_from_users_and_groups(gov):
    p = gov.policy
    assert p.principal("dana").roles == {"steward"}
    assert p.principal("rita", ["research"]).roles == {"researcher"}
    assert p.principal("olaf").roles == frozenset()
    extra = {"steward": {"groups": ["audit"]}}
    assert "steward" in p.principal("olaf", ["audit"], extra).roles


def test_restricted_read_needs_a_purpose_the_dataset_allows(gov):
    p = gov.policy
    rita = p.principal("rita", ["research"])
    no_purpose = p.decide(rita, ds(gov, "patients"), "read")
    assert no_purpose.effect == "deny" and not no_purpose.permitted
    assert "needs a declared purpose" in no_purpose.reasons[0]
    assert "treatment-research" in no_purpose.reasons[0]
    wrong = p.decide(rita, ds(gov, "patients"), "read", purpose="marketing")
    assert wrong.effect == "deny" and "'marketing' is not allowed" in wrong.reasons[0]
    right = p.decide(rita, ds(gov, "patients"), "read", purpose="treatment-research")
    assert right.effect == "redact" and right.permitted and right.rule == "restricted-read"
    assert {c["name"] for c in right.columns} == {"ssn", "email", "notes"}


def test_denial_message_says_who_what_why_and_whom_to_ask(gov):
    p = gov.policy
    d = p.decide(p.principal("olaf"), ds(gov, "patients"), "read", target="/x/patients.csv")
    msg = d.message()
    assert d.effect == "deny" and d.rule is None
    assert msg.startswith("olaf may not read 'patients' (restricted data)")
    assert "no policy rule allows read of restricted data for olaf" in msg
    assert "Dana Steward <dana@example.org>" in msg and d.ask == "Dana Steward <dana@example.org>"


def test_stewards_skip_purpose_checks_and_first_rule_wins(gov):
    p = gov.policy
    d = p.decide(p.principal("dana"), ds(gov, "patients"), "export")
    assert d.effect == "allow" and d.rule == "stewards"
    d = p.decide(p.principal("rita", ["research"]), ds(gov, "patients"), "export")
    assert d.effect == "deny" and "does not leave the workspace" in " ".join(d.reasons)


def test_justify_permits_only_with_a_written_reason(gov):
    p = gov.policy
    rita = p.principal("rita", ["research"])
    bare = p.decide(rita, ds(gov, "hr"), "export")
    assert bare.effect == "justify" and not bare.permitted
    assert "justification" in bare.reasons[-1]
    short = p.decide(rita, ds(gov, "hr"), "export", justification="ok")
    assert not short.permitted
    reason = "quarterly headcount report for the board"
    assert len(reason) >= MIN_JUSTIFICATION
    good = p.decide(rita, ds(gov, "hr"), "export", justification=reason)
    assert good.permitted and good.justification == reason


def test_unlabeled_data_follows_the_default(gov):
    d = gov.policy.decide(gov.policy.principal("olaf"), None, "read", target="/tmp/x.csv")
    assert d.effect == "allow" and d.permitted and d.dataset is None


def test_no_rules_means_the_shipped_default_policy(tmp_path):
    cat = write_catalog(tmp_path / "cat", policy="roles:\n  steward: {users: [dana]}\n")
    gov = load_governance(cat, tmp_path)
    names = [r.name for r in gov.policy.rules]
    assert names[0] == "stewards-full-access" and "restricted-no-export" in names
    p = gov.policy
    assert p.principal("dana").roles >= {"steward"}  # the catalog's role map replaces the default's
    d = p.decide(p.principal("olaf"), gov.catalog.datasets["hr"], "read")
    assert d.effect == "redact"  # default: confidential reads are redacted


def test_policy_errors_name_file_and_line(tmp_path):
    bad = """\
roles:
  steward: {users: [dana]}
  odd: [x]
defaults: {unlabeled: maybe}
rules:
  - name: a
    roles: [wizard]
    effect: allow
  - name: b
    labels: [secret]
    effect: permit
  - name: a
    effect: deny
    min_label: top
  - effect: allow
    colour: blue
"""
    cat = write_catalog(tmp_path / "cat", policy=bad)
    with pytest.raises(CatalogError) as info:
        load_governance(cat, tmp_path)
    text = str(info.value)
    assert "policy.yaml:3: role 'odd'" in text
    assert "policy.yaml:4: defaults.unlabeled" in text
    assert "policy.yaml:7: unknown role 'wizard'" in text
    assert "policy.yaml:10: unknown label 'secret'" in text
    assert "policy.yaml:11: rule effect must be one of" in text
    assert "policy.yaml:14: min_label: unknown label 'top'" in text
    assert "policy.yaml:16: unknown rule field 'colour'" in text
    assert "policy.yaml:15: rule needs a name" in text


def test_duplicate_rule_names_are_rejected(tmp_path):
    cat = write_catalog(tmp_path / "cat", policy="rules:\n  - {name: a, effect: allow}\n  - {name: a, effect: deny}\n")
    with pytest.raises(CatalogError, match=r"policy.yaml:3: rule name 'a' is used twice \(first at .*policy.yaml:2\)"):
        load_governance(cat, tmp_path)


def test_shipped_default_policy_is_valid_on_its_own(tmp_path):
    (tmp_path / "empty").mkdir()
    gov = load_governance(tmp_path / "empty", tmp_path, allow_empty=True)
    assert gov.policy.no_rule == "deny" and gov.policy.unlabeled == "allow"
    with pytest.raises(CatalogError, match="no dataset and no source"):
        load_governance(tmp_path / "empty", tmp_path)  # an empty catalog must be said to be on purpose


def test_discover_never_needs_a_purpose_but_use_does(gov):
    p = gov.policy
    rita = p.principal("rita", ["research"])
    assert p.decide(rita, ds(gov, "patients"), "discover").effect == "redact"
    assert p.decide(rita, ds(gov, "patients"), "read").effect == "deny"
