"""Ungoverned data the policy wants classified: the kernel proposes, a steward sees it on the log."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import DATASETS, POLICY, write_catalog
from kernel_client import running_kernel

SSNS = ["219-09-9999", "078-05-1120", "457-55-5462", "123-45-6789"]
EMAILS = ["ana@example.org", "bo@example.com", "cy@example.net", "di@example.org"]


@pytest.fixture
def catalog_dir(tmp_path):
    policy = POLICY.replace("defaults: {unlabeled: allow, no_rule: deny}",
                            "defaults: {unlabeled: allow, no_rule: deny, classify_unlabeled: true}")
    assert "classify_unlabeled: true" in policy
    return write_catalog(tmp_path / "catalog", DATASETS, policy)


@pytest.fixture
def unlabeled(jp_root_dir):
    rows = [f"{i},{s},{e},visit {i}" for i, (s, e) in enumerate(zip(SSNS * 10, EMAILS * 10))]
    path = jp_root_dir / "found.csv"
    path.write_text("id,ssn,email,comment\n" + "\n".join(rows) + "\n")
    return path


async def test_reading_unlabeled_pii_records_a_classification_proposal(unlabeled, jp_fetch, jp_ws_fetch, fetch_json):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        res = await k.execute("import pandas as pd\ndf = pd.read_csv('found.csv')\nprint(len(df))", cell_id="c-found")
        assert res.text.strip() == "40"  # the read is allowed and unchanged
        for _ in range(100):
            page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana",
                                    params={"event_type": "classification_proposal"})
            if page["records"]:
                break
            await asyncio.sleep(0.05)
    (rec,) = page["records"]
    assert rec["user"] == "rita" and rec["target"] == str(unlabeled) and rec["cell_id"] == "c-found"
    proposal = rec["details"]["proposal"]
    assert proposal["ssn"]["entity"] == "US_SSN" and proposal["email"]["entity"] == "EMAIL_ADDRESS"
    assert "id" not in proposal
    blob = json.dumps(page)
    assert not any(v in blob for v in SSNS + EMAILS)  # proposals carry no values


async def test_without_the_policy_flag_nothing_is_proposed(jp_root_dir, tmp_path):
    from jupyter_guard.governor import load_governance

    gov = load_governance(write_catalog(tmp_path / "plain"), jp_root_dir)
    d = gov.policy.decide(gov.policy.principal("rita", ["research"]), None, "read", target="/x.csv")
    assert d.permitted and d.classify is False
