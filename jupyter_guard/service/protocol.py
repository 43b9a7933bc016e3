"""What single-user servers and the guard service say to each other, as JSON.

Both sides import this module (it imports no web framework), so a request is encoded in one
place and decoded in one place: a governed request (:class:`~jupyter_guard.governor.Request`
without its principal: the service takes who is asking from the Hub, never from the caller),
the service's answer (an :class:`~jupyter_guard.governor.Outcome` and its audit record), an
audit event to record, and an audit query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..audit import AuditEvent, AuditQuery, AuditRecord
from ..audit.model import EVENT_FIELDS
from ..governor import CONTEXT_FIELDS, ERROR, Outcome, Request
from ..policy import DENY, EFFECT_ORDER, Decision

#: the prefix of the service's REST API under its base URL
API = "api/"
#: query parameters of an audit query, besides the filters
_QUERY_INTS = ("after_seq", "limit")
_QUERY_FILTERS = ("user", "dataset", "label", "decision", "notebook", "event_type", "action", "since", "until")


def dataset_ref(ds, target: str | None) -> str | None:
    """How a request names a subject it already knows: a dataset's name, ``source:NAME`` for
    a data source's stand-in dataset (a credential request is about ``source:NAME``), None for
    ungoverned data."""
    if ds is None:
        return None
    return f"source:{ds.name}" if target == f"source:{ds.name}" and not ds.locations else ds.name


def request_body(req: Request, outcome: Outcome | None = None, details: Mapping | None = None) -> dict:
    """A governed request as the service receives it (``outcome``: the caller's own adjustment
    of the policy's answer, e.g. a secret that could not be looked up; only a stricter one counts)."""
    body: dict[str, Any] = {
        "action": req.action, "target": req.target, "kind": req.kind, "purpose": req.purpose,
        "justification": req.justification, "event_type": req.event_type,
        "serves_redacted": req.serves_redacted, "always_record": req.always_record,
        "context": {k: req.context.get(k) for k in CONTEXT_FIELDS if req.context.get(k)},
        "details": dict(details or {}),
    }
    if req.datasets is not None:
        body["datasets"] = [dataset_ref(ds, req.target) for ds in req.datasets]
    if outcome is not None and outcome.reasons:
        body["adjust"] = {"effect": outcome.effect, "permitted": outcome.permitted, "reasons": list(outcome.reasons)}
    return body


def resolve_datasets(catalog, refs) -> tuple | None:
    """The service's datasets for the names a request gives; ValueError for a name its catalog
    does not know (the server's and the service's catalogs differ: refused, never guessed)."""
    if refs is None:
        return None
    out = []
    for ref in refs:
        if ref is None:
            out.append(None)
        elif ref.startswith("source:") and ref[7:] in catalog.sources:
            out.append(catalog.sources[ref[7:]].as_dataset())
        elif ref in catalog.datasets:
            out.append(catalog.datasets[ref])
        else:
            raise ValueError(f"no dataset {ref!r} in the guard service's catalog")
    return tuple(out)


def request_from_body(who, body: Mapping, catalog) -> Request:
    context = body.get("context") or {}
    return Request(
        who, body.get("action") or "read", target=body.get("target"), kind=body.get("kind"),
        datasets=resolve_datasets(catalog, body.get("datasets")), purpose=body.get("purpose") or None,
        justification=body.get("justification") or None,
        context={k: context.get(k) for k in CONTEXT_FIELDS if context.get(k)},
        event_type=body.get("event_type") or "decision", serves_redacted=bool(body.get("serves_redacted", True)),
        always_record=bool(body.get("always_record", False)),
    )


def adjusted(outcome: Outcome, adjust: Mapping | None) -> Outcome:
    """The caller's adjustment applied when it is stricter than the policy's answer: a client can
    make a permitted request fail (its secret lookup failed), never make a refused one pass."""
    if not adjust:
        return outcome
    effect = adjust.get("effect")
    stricter = (effect in (DENY, ERROR) and outcome.permitted) or EFFECT_ORDER.get(effect, 3) > EFFECT_ORDER.get(
        outcome.effect, 3)
    if not stricter:
        return outcome
    return outcome.but(effect, *[str(r) for r in adjust.get("reasons") or ()][:20],
                       permitted=bool(adjust.get("permitted")) and outcome.permitted)


def answer_body(outcome: Outcome) -> dict:
    return {**outcome.to_dict(), "record": outcome.record.to_dict() if outcome.record else None}


def outcome_from_answer(req: Request, answer: Mapping, resolution=None) -> Outcome:
    """The service's answer as an Outcome the server's routes use as they use the governor's."""
    decision = Decision(
        effect=answer.get("effect") or DENY, action=answer.get("action") or req.action,
        user=answer.get("user") or req.who.user, target=answer.get("target"), dataset=answer.get("dataset"),
        label=answer.get("label"), reasons=tuple(answer.get("reasons") or ()), rule=answer.get("rule"),
        ask=answer.get("ask"), purpose=answer.get("purpose"), permitted=bool(answer.get("permitted")),
        columns=tuple(answer.get("columns") or ()), classify=bool(answer.get("classify")),
    )
    record = record_from_dict(answer["record"]) if answer.get("record") else None
    return Outcome(req, (decision,), answer.get("effect") or DENY, decision.permitted, record=record,
                   resolution=resolution, access=answer.get("access") or "direct", ticket=answer.get("ticket"))


def event_body(event: AuditEvent) -> dict:
    return event.to_dict()


def event_from_body(body: Mapping, *, user: str | None) -> AuditEvent:
    """An event to record, with the caller's Hub identity as its user (a claimed other name is
    kept in ``details.claimed_user``, never used)."""
    fields = {k: body.get(k) for k in EVENT_FIELDS if k in body}
    details = dict(fields.get("details") or {})
    claimed = fields.get("user")
    if claimed and claimed != user:
        details["claimed_user"] = str(claimed)
    fields.update(user=user, details=details, reasons=tuple(fields.get("reasons") or ()))
    return AuditEvent(**fields)


def record_from_dict(data: Mapping) -> AuditRecord:
    event = AuditEvent(**{k: data.get(k) for k in EVENT_FIELDS if k in data and k not in ("reasons", "details")},
                       reasons=tuple(data.get("reasons") or ()), details=dict(data.get("details") or {}))
    return AuditRecord(int(data["seq"]), str(data["time"]), event, str(data.get("prev_mac") or ""),
                       str(data.get("mac") or ""))


def query_params(q: AuditQuery) -> dict[str, str]:
    out = {name: str(getattr(q, name)) for name in (*_QUERY_FILTERS, *_QUERY_INTS) if getattr(q, name) is not None}
    out["order"] = "desc" if q.descending else "asc"
    if q.limit is None:
        out["limit"] = "none"
    return out


def query_from_params(params: Mapping[str, str]) -> AuditQuery:
    """An audit query from request arguments; ValueError naming a bad one."""
    kwargs: dict[str, Any] = {name: params.get(name) or None for name in _QUERY_FILTERS}
    for name in _QUERY_INTS:
        value = params.get(name)
        if value in (None, ""):
            continue
        if name == "limit" and value == "none":
            kwargs["limit"] = None
            continue
        try:
            kwargs[name] = int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, not {value!r}") from None
    kwargs.setdefault("limit", 1000)
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be asc or desc, not {order!r}")
    return AuditQuery(**kwargs, descending=order == "desc")
