"""The REST API's OpenAPI document (``openapi.yaml`` beside this file), and the one place
request bodies and query strings are checked against it.

Limits hold before any schema is read: a body over :data:`MAX_BODY` bytes, nested deeper than
:data:`MAX_DEPTH`, or holding a NUL character anywhere is refused. Messages name the field and
what is wrong with it, never the value (it may be personal data or a secret).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

SPEC_FILE = Path(__file__).with_name("openapi.yaml")
MAX_BODY = 2 * 1024 * 1024
MAX_DEPTH = 32


@functools.lru_cache(maxsize=1)
def spec() -> dict:
    with open(SPEC_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=1)
def _routes() -> list[tuple[re.Pattern[str], str]]:
    """(regex of a spec path, the spec path), templated segments matching one path segment."""
    out = []
    for path in spec()["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(path))
        out.append((re.compile(f"^{pattern}/?$"), path))
    return out


def operation(method: str, route: str) -> dict | None:
    """The spec's operation for a request path under the API prefix (e.g. ``/kernel/decide``)."""
    for pattern, path in _routes():
        if pattern.match(route):
            return spec()["paths"][path].get(method.lower())
    return None


@functools.lru_cache(maxsize=64)
def _validator(ref: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": ref, "components": spec()["components"]})


def _depth_and_nul(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and NUL characters (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise ValueError("the body holds a NUL character; text fields may not")
        elif isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels")
            if isinstance(v, dict):
                stack.extend((k, depth) for k in v)
                stack.extend((x, depth + 1) for x in v.values())
            else:
                stack.extend((x, depth + 1) for x in v)


def _where(error) -> str:
    path = [str(p) for p in error.absolute_path]
    return ".".join(path) if path else "body"


def _describe(error) -> str:
    """A schema error in words, naming the field, never echoing the value."""
    where, rule, expected = _where(error), error.validator, error.validator_value
    if rule == "required":
        missing = [name for name in expected if isinstance(error.instance, dict) and name not in error.instance]
        return f"{', '.join(missing) or 'a field'} is required"
    if rule == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"{where} must be {' or '.join(str(k) for k in kinds)}"
    if rule == "enum":
        return f"{where} must be one of {', '.join(str(v) for v in expected)}"
    if rule == "maxLength":
        return f"{where} is longer than {expected} characters"
    if rule == "minLength":
        return f"{where} must not be empty"
    if rule == "maxItems":
        return f"{where} has more than {expected} items; send them in batches"
    if rule == "maxProperties":
        return f"{where} has more than {expected} entries"
    if rule in ("minimum", "maximum"):
        return f"{where} must be {'at least' if rule == 'minimum' else 'at most'} {expected}"
    if rule == "pattern" and expected == "\\S":
        return f"{where} must not be blank"
    if rule == "pattern" or rule == "oneOf":
        return f"{where} is not of the expected form" + (
            " (a name: letters, digits, '_', '.', '-')" if "purpose" in where or "action" in where else "")
    return f"{where} is not valid ({rule})"


def validate_body(method: str, route: str, raw: bytes) -> dict:
    """The JSON object of a request body, checked against its route's schema; ValueError saying why not."""
    if len(raw) > MAX_BODY:
        raise ValueError(f"the body is {len(raw)} bytes; at most {MAX_BODY}")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"body is not JSON: {type(e).__name__} at {getattr(e, 'pos', '?')}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    _depth_and_nul(body)
    op = operation(method, route) or {}
    schema = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema")
    if schema and "$ref" in schema:
        error = next(iter(sorted(_validator(schema["$ref"]).iter_errors(body), key=lambda e: e.path)), None)
        if error is not None:
            raise ValueError(_describe(error))
    return body


def _parameter(p: dict) -> dict:
    if "$ref" in p:
        return spec()["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]]
    return p


def validate_query(method: str, route: str, arguments: dict[str, list[bytes]]) -> dict[str, Any]:
    """The query arguments the spec names for this route, typed and checked; ValueError saying why not.

    Empty values count as not given. Arguments the spec does not name are ignored.
    """
    op = operation(method, route) or {}
    out: dict[str, Any] = {}
    for p in map(_parameter, op.get("parameters", ())):
        if p.get("in") != "query":
            continue
        name, schema = p["name"], p.get("schema", {})
        values = arguments.get(name) or []
        raw = values[-1].decode("utf-8", "replace") if values else ""
        if not raw:
            if p.get("required"):
                raise ValueError(f"{name}= is required")
            out[name] = schema.get("default")
            continue
        if "\x00" in raw:
            raise ValueError(f"{name} holds a NUL character")
        if len(raw) > schema.get("maxLength", 4096):
            raise ValueError(f"{name} is longer than {schema.get('maxLength', 4096)} characters")
        value: Any = raw
        if schema.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer") from None
            if "minimum" in schema and value < schema["minimum"]:
                raise ValueError(f"{name} must be at least {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                raise ValueError(f"{name} must be at most {schema['maximum']}")
        if "enum" in schema and value not in schema["enum"]:
            raise ValueError(f"{name} must be one of {', '.join(map(str, schema['enum']))}")
        out[name] = value
    return out
