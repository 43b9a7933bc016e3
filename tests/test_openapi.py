"""The OpenAPI document of the REST API against the code: every registered route and verb is in
it (and nothing else), its schemas are valid, bodies are checked against it, and the
TypeScript types the frontend uses have the fields the document gives them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from jupyter_guard.server.api import MAX_DEPTH, spec, validate_body, validate_query
from jupyter_guard.server.handlers import API, default_handlers

TOKENS = Path(__file__).resolve().parents[1] / "labextension" / "src" / "tokens.ts"
VERBS = ("get", "post", "put", "patch", "delete")


def _registered() -> dict[str, set[str]]:
    out = {}
    for pattern, handler in default_handlers:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern[len(API):])
        out[path] = {v for v in VERBS if v in vars(handler) or any(v in vars(c) for c in handler.__mro__
                                                                    if c.__module__.startswith("jupyter_guard"))}
    return out


def test_every_route_and_verb_is_in_the_document_and_nothing_else():
    documented = {path: {v for v in ops if v in VERBS} for path, ops in spec()["paths"].items()}
    assert documented == _registered()


def test_every_schema_is_valid_json_schema():
    for name, schema in spec()["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    for path, ops in spec()["paths"].items():
        for verb, op in ops.items():
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                ref = body["$ref"].rsplit("/", 1)[-1]
                assert ref in spec()["components"]["schemas"], (path, verb, ref)


@pytest.mark.parametrize(("route", "body", "words"), [
    ("/decide", b"{}", "target is required"),
    ("/decide", b'{"target": "x", "kind": "ftp"}', "kind must be one of"),
    ("/decide", b'{"target": "x", "purpose": "' + b"p" * 101 + b'"}', "purpose is not of the expected form"),
    ("/decide", b'{"target": "x", "justification": "' + b"j" * 2001 + b'"}', "longer than 2000"),
    ("/decide", b'{"target": "a\\u0000b"}', "NUL character"),
    ("/decide", b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ("/decide", b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested deeper"),
    ("/decide", b"x" * (2 * 1024 * 1024 + 1), "bytes; at most"),
    ("/kernels/abc/purpose", b'{"purpose": 5}', "purpose is not of the expected form"),
    ("/kernel/classification", b'{"target": "t", "proposal": {"c": {"entity": "E"}}}', "rule is required"),
])
def test_bodies_are_refused_with_the_field_named(route, body, words):
    with pytest.raises(ValueError) as err:
        validate_body("POST", route, body)
    assert words in str(err.value)


def test_messages_never_echo_the_value():
    secret = "hunter2-AKIAIOSFODNN7EXAMPLE"
    for body in (f'{{"target": 5, "purpose": "{secret}"}}', f'{{"target": "x", "kind": "{secret}"}}'):
        with pytest.raises(ValueError) as err:
            validate_body("POST", "/decide", body.encode())
        assert "hunter2" not in str(err.value)


def test_queries_are_typed_and_bounded():
    assert validate_query("GET", "/audit", {"limit": [b"7"], "order": [b"asc"]})["limit"] == 7
    for args, words in (({"limit": [b"0"]}, "at least 1"), ({"after": [b"9223372036854775808"]}, "at most"),
                        ({"user": [b"\x00"]}, "NUL"), ({"limit": [b"ten"]}, "integer"), ({"order": [b"up"]}, "one of")):
        with pytest.raises(ValueError) as err:
            validate_query("GET", "/audit", args)
        assert words in str(err.value)


def _ts_fields(name: str) -> set[str]:
    text = TOKENS.read_text(encoding="utf-8")
    match = re.search(rf"export interface {name} \{{(.*?)\n\}}", text, re.DOTALL)
    assert match, f"{name} is not in tokens.ts"
    body = re.sub(r"/\*\*.*?\*/", "", match.group(1), flags=re.DOTALL)
    depth, fields = 0, set()
    for line in body.splitlines():  # only the interface's own fields, not those of inline types
        found = re.match(r"\s*(\w+)\??:", line)
        if found and depth == 0:
            fields.add(found.group(1))
        depth += line.count("{") - line.count("}")
    return fields


def test_the_frontend_types_have_the_documented_fields():
    typed = {name: s for name, s in spec()["components"]["schemas"].items() if "x-typescript" in s}
    assert len(typed) >= 6
    for schema in typed.values():
        assert _ts_fields(schema["x-typescript"]) == set(schema["properties"]), schema["x-typescript"]
