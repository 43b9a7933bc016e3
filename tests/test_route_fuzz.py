"""Every route, every body and query its schema admits or refuses: never a 500 (issue 14, finding 5).

Bodies come from hypothesis (arbitrary JSON, and each route's valid example with one field
replaced by arbitrary JSON), drawn deterministically up front and sent to a real server; the
kernel routes are called with a real kernel's token.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_client import auth, running_kernel
from tornado.httpclient import HTTPClientError

from jupyter_guard.server.api import spec

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
VALID = {
    "/catalog/labels": {"paths": ["data/patients.csv"]},
    "/decide": {"target": "data/patients.csv", "purpose": "treatment-research"},
    "/kernels/{kernel_id}/purpose": {"purpose": "treatment-research"},
    "/access-requests": {"dataset": "patients", "reason": "the study"},
    "/export/preview": {"path": "analysis.ipynb"},
    "/kernel/decide": {"target": "data/patients.csv"},
    "/kernel/purpose": {"purpose": "treatment-research"},
    "/kernel/credential": {"source": "warehouse"},
    "/kernel/classification": {"target": "x.csv", "proposal": {"c": {"entity": "E", "rule": "mask", "share": 0.5}}},
    "/kernel/derived": {"target": "derived.csv", "datasets": ["clinics"], "writer": "pandas.DataFrame.to_csv"},
    "/kernel/read": {"ticket": "not.a-ticket", "format": "parquet", "columns": ["id"]},
}


def _draw(strategy, n: int) -> list:
    out: list = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None)
    @given(strategy)
    def collect(value):
        out.append(value)

    collect()
    return out


def _bodies(route: str) -> list:
    valid = VALID[route]
    mutated = st.tuples(st.sampled_from(sorted(valid) + ["extra"]), JSON).map(lambda kv: {**valid, kv[0]: kv[1]})
    return [valid, *_draw(JSON, 40), *_draw(mutated, 40)]


async def _status(jp_fetch, *parts, **kw) -> int:
    try:
        return (await jp_fetch(*parts, **kw)).code
    except HTTPClientError as e:
        return e.code


async def test_no_body_or_query_gets_a_500(jp_fetch, jp_ws_fetch, guard_app):
    async with running_kernel(jp_fetch, jp_ws_fetch) as (kernel_id, k):
        token = (await k.execute("import os; print(os.environ['JUPYTER_GUARD_TOKEN'])")).text.strip()
        posts = [p for p, ops in spec()["paths"].items() if "post" in ops]
        assert sorted(posts) == sorted(VALID)
        seen = set()
        for route in posts:
            headers = {"X-Jupyter-Guard-Kernel": token} if route.startswith("/kernel/") else auth("tok-rita")
            parts = ("jupyter-guard", "api", *route.replace("{kernel_id}", kernel_id).strip("/").split("/"))
            for body in _bodies(route):
                raw = json.dumps(body, allow_nan=False)
                status = await _status(jp_fetch, *parts, method="POST", body=raw, headers=headers)
                assert status < 500, (route, raw[:300], status)
                seen.add((route, status // 100))
        # the fuzz reached both answers on every route: accepted bodies and 400s
        assert all((r, 4) in seen for r in posts)
        assert {(r, 2) for r in ("/decide", "/catalog/labels", "/kernel/purpose")} <= seen
        queries = _draw(st.dictionaries(st.sampled_from(["limit", "after", "order", "user", "since", "path", "q",
                                                         "format", "table", "uri"]),
                                        st.text(max_size=25) | st.integers().map(str), max_size=4), 60)
        for route in ("audit", "audit/export", "catalog", "catalog/resolve", "notebook/sensitivity"):
            for params in queries:
                status = await _status(jp_fetch, "jupyter-guard", "api", *route.split("/"), params=params,
                                       headers=auth("tok-dana"))
                assert status < 500, (route, params, status)
