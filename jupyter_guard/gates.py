"""Export and download gates in the server: nbconvert, /files downloads, contents reads, saves.

Mechanism (the smallest that holds for every path, and composes with the admin's authorizer):

- The configured authorizer's ``is_authorized`` is WRAPPED on its instance, never replaced:
  the original decides first; only when it allows, and the handler is one of the core content
  handlers (nbconvert GET/POST, /files, contents GET), does the gate decide with the policy.
  ``@authorized`` awaits the answer (``ensure_async``), so for those handlers the wrapper
  returns a coroutine; for every other call it returns the original answer untouched.
- A refusal raises ``web.HTTPError(403, message)`` from inside ``is_authorized``: the
  ``@authorized`` decorator does not catch it, so the user gets the message (who, what, why,
  who to ask) — a plain ``False`` would only give "not authorized".
- A redacted export never lets the core handler see the raw notebook:
  nbconvert POST: the request body is replaced by the redacted notebook before the handler
  parses it; nbconvert GET and contents GET: a context variable set for this request makes
  the (wrapped) ``ContentsManager.get`` return the redacted notebook for that path only;
  /files: it reads the file from disk itself (StaticFileHandler), so the gate writes the
  redacted notebook and ends the request with ``web.Finish``.
- Every export/download decision is recorded (event ``export``/``download``; data-file reads
  as ``decision``) BEFORE the response; a record that cannot be written refuses (fail closed).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import copy
import inspect
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from tornado import web

from .audit import AuditEvent
from .catalog import Dataset, Label
from .errors import AuditError
from .policy import ALLOW, DENY, JUSTIFY, REDACT, Decision
from .sensitivity import PII_DATASET, audit_records, display_copy, notebook_sensitivity

log = logging.getLogger(__name__)

JUSTIFICATION_HEADER = "X-Jupyter-Guard-Justification"
PURPOSE_HEADER = "X-Jupyter-Guard-Purpose"
EFFECT_ORDER = {ALLOW: 0, REDACT: 1, JUSTIFY: 2, DENY: 3}
MAX_REASON = 2000
NOT_SERVED_REDACTED = ("the server does not serve redacted copies of data files; read it in a kernel "
                       "(pd.read_csv), where the column rules apply.")

#: the redacted notebook the wrapped ContentsManager.get serves for this request: (path, nb)
_serving: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar("jupyter_guard_serving", default=None)


class Refused(Exception):
    """An export/download that policy (or bad input) refuses; status and message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Assessment:
    """What would happen to one export/download of one notebook (no values, only names/counts)."""

    path: str | None
    action: str
    fmt: str | None
    sensitivity: dict
    decisions: list[Decision] = field(default_factory=list)
    effect: str = ALLOW  # allow (served raw) | redact (served redacted) | deny (refused)
    blocked_cells: frozenset[str] = frozenset()
    message: str = ""
    needs_justification: bool = False
    known_secrets: tuple[str, ...] = ()
    purpose: str | None = None  # the purpose it was decided under (the request's or the session's)

    @property
    def governed(self) -> bool:
        return self.sensitivity.get("label") is not None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "action": self.action,
            "format": self.fmt,
            "effect": self.effect,
            "permitted": self.effect != DENY,
            "needs_justification": self.needs_justification,
            "purpose": self.purpose,
            "message": self.message or None,
            "label": self.sensitivity.get("label"),
            "datasets": self.sensitivity.get("datasets", []),
            "pii_in_outputs": self.sensitivity.get("pii_in_outputs", {}),
            "blocked_cells": sorted(self.blocked_cells),
            "decisions": [
                {k: d.to_dict()[k] for k in ("dataset", "label", "effect", "permitted", "reasons", "rule", "ask")}
                for d in self.decisions
            ],
        }


def _entity_counts(report: dict) -> dict[str, int]:
    for key in ("entity_counts", "entities", "pii"):
        value = report.get(key)
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}
    return {}


class ExportGate:
    """Decides exports and downloads of notebooks and data files for one GuardApp."""

    def __init__(self, app: Any):
        self.app = app

    # -- pieces ----------------------------------------------------------------------------

    @property
    def governor(self):
        return self.app.governor

    def rank(self, label: str) -> int:
        found = self.governor.catalog.label(label)
        return found.rank if found else 10**6  # a label the catalog forgot ranks highest (safe side)

    def pii_label(self) -> str | None:
        if not self.app.pii_label:
            return None
        catalog = self.governor.catalog
        if catalog.label(self.app.pii_label) is None:
            labels = sorted(catalog.labels, key=lambda lab: lab.rank)
            return labels[-1].name if labels else None  # a misspelt pii_label errs on the safe side
        return self.app.pii_label

    def known_secrets(self, path: str | None) -> tuple[str, ...]:
        if not path:
            return ()
        found: set[str] = set()
        for binding in list(self.app.kernel_bindings._by_kernel.values()):
            if binding.notebook == path:
                found.update(s for s in binding.secrets if s)
        return tuple(sorted(found))

    def scan_outputs(self, nb: Any) -> tuple[dict[str, int], Any]:
        """(entity counts in the outputs, the notebook with PII replaced) — blocking."""
        from .export import ExportPlan, redact_notebook

        plan = ExportPlan(policy_note="jupyter_guard scan", scan=True, drop_unscannable=False,
                          max_output_bytes=self.app.export_max_output_bytes)
        new_nb, report = redact_notebook(nb, plan)
        return _entity_counts(report.to_dict()), new_nb

    def sensitivity_of(self, path: str | None, nb: Any) -> tuple[dict, Any]:
        """A notebook's sensitivity (audit log + output scan) and its scanned copy — blocking."""
        records = audit_records(self.governor.audit, path) if path else []
        pii, scanned = self.scan_outputs(nb)
        return notebook_sensitivity(path or "", records, self.rank, pii, self.pii_label()), scanned

    def _dataset(self, name: str, label: str) -> Dataset:
        catalog = self.governor.catalog
        ds = catalog.datasets.get(name)
        if ds is not None:
            return ds
        lab = catalog.label(label) or Label(label, 10**6)
        return Dataset(name=name, label=lab)

    def session_purpose(self, who: Any, path: str | None) -> str | None:
        """The purpose this user declared for the notebook's running kernel, if any.

        A researcher declares a purpose once for the session (toolbar or ``%guard purpose``);
        exporting that notebook's results is part of the same work, so the export is decided
        under it unless the request names another.
        """
        if not path:
            return None
        for binding in reversed(self.app.kernel_bindings.for_notebook(path)):
            if binding.purpose and self.app.acts_for(binding, who):
                return binding.purpose
        return None

    def assess(self, who: Any, path: str | None, nb: Any, action: str, fmt: str | None,
               justification: str | None = None, purpose: str | None = None) -> tuple[Assessment, Any]:
        """Decide one export/download of a notebook without recording it — blocking."""
        purpose = purpose or self.session_purpose(who, path)
        sens, scanned = self.sensitivity_of(path, nb)
        target = path or "(notebook in the request body)"
        policy = self.governor.policy
        decisions = [
            policy.decide(who, self._dataset(d["dataset"], d["label"]), action, target=target,
                          purpose=purpose, justification=justification)
            for d in sens["datasets"]
        ]
        if sens["pii_label"]:
            lab = self.governor.catalog.label(sens["pii_label"])
            decisions.append(policy.decide(who, Dataset(name=PII_DATASET, label=lab), action, target=target,
                                           purpose=purpose, justification=justification))
        if not decisions:
            decisions.append(policy.decide(who, None, action, target=target, purpose=purpose,
                                           justification=justification))
        a = Assessment(path, action, fmt, sens, decisions, known_secrets=self.known_secrets(path), purpose=purpose)
        refused = [d for d in decisions if not d.permitted]
        if refused and self.app.export_denied_cells == "block" and action == "export":
            # block mode: cells that read the refused datasets lose their outputs, if every such
            # read is pinned to a cell; PII found in outputs is never "blocked", only redacted
            names = {d.dataset for d in refused}
            pinned = names.isdisjoint(sens["unattributed"]) and PII_DATASET not in names and None not in names
            if pinned:
                a.blocked_cells = frozenset(c for c, reads in sens["cell_reads"].items()
                                            if any(r["dataset"] in names for r in reads))
                refused = []
        if refused:
            a.effect = DENY
            first = max(refused, key=lambda d: EFFECT_ORDER.get(d.effect, 3))
            a.needs_justification = all(d.effect == JUSTIFY for d in refused)
            what = f"{path} as {fmt}" if fmt else str(path or "this notebook")
            verb = "Export" if action == "export" else "Download"
            a.message = f"{verb} of {what} refused: {first.message()}"
        elif a.blocked_cells or any(d.effect == REDACT for d in decisions) or (
            a.known_secrets and any(d.dataset for d in decisions)
        ):
            a.effect = REDACT
        else:
            a.effect = ALLOW
        return a, scanned

    def redact(self, a: Assessment, nb: Any) -> tuple[Any, dict]:
        from .export import ExportPlan, redact_notebook

        plan = ExportPlan(
            policy_note=self.policy_note(a),
            blocked_cells=a.blocked_cells,
            drop_unscannable=a.governed,
            scan=True,
            known_secrets=a.known_secrets,
            max_output_bytes=self.app.export_max_output_bytes,
        )
        new_nb, report = redact_notebook(nb, plan)
        return new_nb, report.to_dict()

    def policy_note(self, a: Assessment) -> str:
        rules = sorted({d.rule for d in a.decisions if d.rule})
        label = a.sensitivity.get("label") or "unlabelled"
        return (f"Redacted by jupyter_guard for {a.decisions[0].user} ({a.action}, {label} notebook; "
                f"policy rules: {', '.join(rules) or 'defaults'}).")

    def event(self, a: Assessment, who: Any, *, justification: str | None, report: dict | None,
              refused_for: str | None = None) -> AuditEvent:
        sens = a.sensitivity
        top = max(sens["datasets"], key=lambda d: self.rank(d["label"]), default=None)
        return AuditEvent(
            event_type=a.action,
            user=who.user,
            action=a.action,
            target=a.path,
            dataset=top["dataset"] if top else None,
            label=sens.get("label"),
            # served raw after a written reason: recorded as justify, with the reason
            decision=JUSTIFY if a.effect == ALLOW and any(d.effect == JUSTIFY for d in a.decisions) else a.effect,
            reasons=tuple(r for d in a.decisions for r in d.reasons)[:20] + ((refused_for,) if refused_for else ()),
            justification=(justification or None) if any(d.effect == JUSTIFY for d in a.decisions) else None,
            purpose=a.purpose,
            notebook=a.path,
            details={
                "format": a.fmt,
                "datasets": [d["dataset"] for d in sens["datasets"]],
                "pii_in_outputs": sens["pii_in_outputs"],
                "blocked_cells": len(a.blocked_cells),
                "rules": sorted({d.rule for d in a.decisions if d.rule}),
                "redaction": report or {},
            },
        )


# -- the HTTP side ---------------------------------------------------------------------------


def _handler_kinds():
    from jupyter_server.base.handlers import AuthenticatedFileHandler
    from jupyter_server.files.handlers import FilesHandler
    from jupyter_server.nbconvert.handlers import NbconvertFileHandler, NbconvertPostHandler
    from jupyter_server.services.contents.handlers import ContentsHandler

    return (
        (NbconvertPostHandler, "nbconvert_post"),
        (NbconvertFileHandler, "nbconvert"),
        (AuthenticatedFileHandler, "files"),
        (FilesHandler, "files"),
        (ContentsHandler, "contents"),
    )


def request_kind(handler: Any, kinds) -> str | None:
    if handler.request.method not in ("GET", "HEAD", "POST"):
        return None
    for cls, kind in kinds:
        if isinstance(handler, cls):
            if kind == "nbconvert_post" and handler.request.method != "POST":
                return None
            if kind != "nbconvert_post" and handler.request.method == "POST":
                return None
            return kind
    return None


def _arg(handler: Any, header: str, name: str) -> str | None:
    value = handler.request.headers.get(header) or handler.get_query_argument(name, None)
    return value.strip()[:MAX_REASON] if value and value.strip() else None


def _path(handler: Any) -> str:
    path = handler.path_kwargs.get("path")
    if path is None and handler.path_args:
        path = handler.path_args[-1]
    return (path or "").strip("/")


def _http_error(status: int, message: str) -> web.HTTPError:
    # tornado formats log_message with %; JupyterHandler too. Keep the text literal.
    return web.HTTPError(status, message.replace("%", " percent"), reason="Refused by jupyter_guard")


def install_gates(app: Any) -> ExportGate:
    """Wrap the configured authorizer and the contents manager's get (see the module doc)."""
    gate = ExportGate(app)
    kinds = _handler_kinds()
    authorizer = app.serverapp.authorizer
    original = authorizer.is_authorized

    def is_authorized(handler, user, action, resource):
        allowed = original(handler, user, action, resource)
        kind = request_kind(handler, kinds)
        if kind is None:
            return allowed

        async def decide():
            ok = await allowed if inspect.isawaitable(allowed) else allowed
            if not ok:
                return False
            await check(gate, handler, user, kind)
            return True

        return decide()

    authorizer.is_authorized = is_authorized

    cm = app.serverapp.contents_manager
    original_get = cm.get

    def get(path, *args, **kwargs):
        serving = _serving.get()
        result = original_get(path, *args, **kwargs)
        if serving is None or serving[0] != (path or "").strip("/"):
            return result
        if inspect.isawaitable(result):
            async def swapped():
                return _swap(await result, serving[1])
            return swapped()
        return _swap(result, serving[1])

    cm.get = get
    return gate


def _swap(model: dict, nb: Any) -> dict:
    """The contents model of a notebook with the redacted notebook as its content."""
    import nbformat

    if not model.get("content"):
        return model
    model = dict(model)
    model["hash"] = None
    if model.get("type") == "notebook":
        model["content"] = nb
    elif model.get("format") == "base64":
        model["content"] = base64.b64encode(nbformat.writes(nb).encode()).decode("ascii")
    else:
        model["content"] = nbformat.writes(nb)
    return model


async def check(gate: ExportGate, handler: Any, user: Any, kind: str) -> None:
    """Gate one request the configured authorizer allowed. Raises to refuse; returns to serve."""
    app = gate.app
    who = app.principal_for(user)
    justification = _arg(handler, JUSTIFICATION_HEADER, "justification")
    purpose = _arg(handler, PURPOSE_HEADER, "purpose")
    if kind == "nbconvert_post":
        await _gate_post(gate, handler, who, justification, purpose)
        return
    path = _path(handler)
    if kind == "nbconvert":
        fmt = handler.path_kwargs.get("format")
        if path.endswith(".ipynb"):
            await _gate_notebook(gate, handler, who, path, "export", fmt, justification, purpose, serve="contents")
        return  # not a notebook: the core handler redirects to /files, which is gated there
    if kind == "files":
        if path.endswith(".ipynb"):
            await _gate_notebook(gate, handler, who, path, "download", None, justification, purpose, serve="files")
        else:
            await _gate_data_file(gate, handler, who, path, "download", justification, purpose)
        return
    # contents GET: a notebook read as a file (JupyterLab's download) or a governed data file
    if handler.get_query_argument("content", "1") == "0" or handler.get_query_argument("type", None) == "directory":
        return
    if path.endswith(".ipynb"):
        if handler.get_query_argument("format", None):  # raw text/base64 of a notebook: a download
            await _gate_notebook(gate, handler, who, path, "download", None, justification, purpose, serve="contents")
        return  # opening one's own notebook in the editor is not an export
    await _gate_data_file(gate, handler, who, path, "read", justification, purpose)


async def _record(gate: ExportGate, event: AuditEvent) -> None:
    try:
        await gate.governor.record_async(event)
    except AuditError as e:
        raise _http_error(503, f"{event.user} may not {event.action} {event.target}: the audit log cannot record "
                               f"this ({e}), and nothing leaves unaudited. Tell your JupyterHub admin.") from e


async def _load(handler: Any, path: str) -> bytes:
    from jupyter_core.utils import ensure_async

    model = await ensure_async(handler.contents_manager.get(path, type="file", format="base64", content=True))
    return base64.b64decode(model["content"])


async def _gate_notebook(gate, handler, who, path, action, fmt, justification, purpose, *, serve: str) -> None:
    from .export import ExportError, load_notebook

    loop = asyncio.get_running_loop()
    raw = await _load(handler, path)
    try:
        nb = await loop.run_in_executor(None, load_notebook, raw)
    except ExportError as e:
        await _refuse_unreadable(gate, who, path, action, fmt, str(e))
    a, _ = await loop.run_in_executor(None, gate.assess, who, path, nb, action, fmt, justification, purpose)
    await _serve(gate, handler, who, a, nb, justification, serve)


async def _refuse_unreadable(gate, who, path, action, fmt, why: str):
    message = f"{path or 'the notebook'} cannot be read as a notebook ({why}), so it cannot be checked and is not {action}ed."
    await _record(gate, AuditEvent(event_type=action, user=who.user, action=action, target=path, notebook=path,
                                   decision=DENY, reasons=(message[:500],), details={"format": fmt}))
    raise _http_error(422, message)


async def _serve(gate, handler, who, a: Assessment, nb, justification, serve: str) -> None:
    loop = asyncio.get_running_loop()
    if a.effect == DENY:
        await _record(gate, gate.event(a, who, justification=justification, report=None))
        raise _http_error(403, a.message)
    if a.effect == ALLOW:
        await _record(gate, gate.event(a, who, justification=justification, report=None))
        return
    try:
        new_nb, report = await loop.run_in_executor(None, gate.redact, a, nb)
    except Exception as e:  # never serve what could not be redacted
        log.exception("jupyter_guard: redaction of %s failed; export refused", a.path)
        await _record(gate, gate.event(a, who, justification=justification, report=None,
                                       refused_for="redaction failed"))
        raise _http_error(422, f"{a.path} could not be redacted ({type(e).__name__}), so it is not exported.") from e
    await _record(gate, gate.event(a, who, justification=justification, report=report))
    if serve == "body":
        model = json.loads(handler.request.body)
        model["content"] = json.loads(json.dumps(new_nb))  # multiline strings stay strings
        handler.request.body = json.dumps(model).encode()
    elif serve == "contents":
        _serving.set((a.path, new_nb))
    else:  # /files reads the disk itself: answer here
        name = a.path.rsplit("/", 1)[-1]
        handler.set_attachment_header(name)
        handler.set_header("Content-Type", "application/x-ipynb+json")
        handler.set_header("Cache-Control", "no-store")
        handler.finish(_writes(new_nb))
        raise web.Finish()


def _writes(nb: Any) -> str:
    import nbformat

    return nbformat.writes(nb)


async def _gate_post(gate, handler, who, justification, purpose) -> None:
    """POST /nbconvert/<format> with a notebook model in the body."""
    from .export import ExportError, load_notebook

    fmt = handler.path_kwargs.get("format")
    try:
        model = json.loads(handler.request.body or b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise _http_error(400, f"the body is not a JSON notebook model: {e}") from e
    if not isinstance(model, dict) or not isinstance(model.get("content"), dict):
        raise _http_error(400, "the body must be a notebook model: {name, path?, content: {...notebook...}}")
    path = model.get("path") if isinstance(model.get("path"), str) else None
    path = path.strip("/") if path else None
    loop = asyncio.get_running_loop()
    try:
        nb = await loop.run_in_executor(None, load_notebook, json.dumps(model["content"]))
    except ExportError as e:
        await _refuse_unreadable(gate, who, path, "export", fmt, str(e))
    a, _ = await loop.run_in_executor(None, gate.assess, who, path, nb, "export", fmt, justification, purpose)
    if a.effect == ALLOW:
        # served as parsed by us (upgraded/validated), so what is recorded is what is converted
        model["content"] = json.loads(json.dumps(nb))
        handler.request.body = json.dumps(model).encode()
    await _serve(gate, handler, who, a, nb, justification, "body")


async def _gate_data_file(gate, handler, who, path, action, justification, purpose) -> None:
    """A governed data file through /files (download) or the contents API (read)."""
    gov = gate.governor.governance
    res = gov.catalog.resolve(path, "path")
    if res.dataset is None:
        return  # ungoverned files are not recorded (JupyterLab fetches many)
    decision = gov.policy.decide(who, res.dataset, action, target=path, purpose=purpose, justification=justification)
    served = decision.permitted and decision.effect != REDACT
    reasons = tuple(decision.reasons)
    if decision.permitted and not served:
        reasons += (NOT_SERVED_REDACTED,)
    event = AuditEvent(
        event_type="download" if action == "download" else "decision",
        user=who.user, action=action, target=path, dataset=res.dataset.name, label=res.dataset.label.name,
        decision=decision.effect if served or not decision.permitted else DENY, reasons=reasons,
        purpose=purpose, justification=decision.justification,
        details={"via": "files" if action == "download" else "contents", "rule": decision.rule,
                 "permitted": served},
    )
    await _record(gate, event)
    if not served:
        message = decision.message() if not decision.permitted else (
            f"{who.user} may {action} {res.dataset.name!r} ({res.dataset.label.name} data) only redacted: "
            + " ".join(reasons))
        raise _http_error(403, message)


# -- save hook -------------------------------------------------------------------------------


def save_hook(gate: ExportGate):
    """A pre-save hook: the sensitivity display copy; PII outputs of governed notebooks flagged/redacted."""

    def hook(model=None, path=None, contents_manager=None, **kwargs):
        mode = gate.app.save_hook
        if mode == "off" or not model or model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        import nbformat

        from .export import GUARD_METADATA_KEY
        from .export.notebook import HEADER_CELL_ID

        path = (path or "").strip("/")
        nb = nbformat.from_dict(copy.deepcopy(model["content"]))
        sens, scanned = gate.sensitivity_of(path, nb)
        content = model["content"]
        meta = content.setdefault("metadata", {}).setdefault(GUARD_METADATA_KEY, {})
        meta["sensitivity"] = display_copy(sens)
        if not sens["datasets"]:  # only outputs of notebooks that read governed data are marked
            return
        kept = [c for c in scanned.get("cells", []) if c.get("id") != HEADER_CELL_ID]  # the export header
        redacted = {c.get("id") or i: c for i, c in enumerate(kept)}
        for i, cell in enumerate(content.get("cells", [])):
            twin = redacted.get(cell.get("id") or i)
            if twin is None or "outputs" not in cell:
                continue
            outs = twin.get("outputs", [])
            flagged = []
            for j, out in enumerate(cell["outputs"]):
                if j >= len(outs) or _plain(outs[j]) == _plain(out):
                    continue
                flagged.append(j)
                if mode == "redact":
                    cell["outputs"][j] = json.loads(json.dumps(outs[j]))
            # stream and error outputs have no metadata in nbformat: the flag is on the cell
            cell_meta = cell.setdefault("metadata", {})
            if flagged:
                cell_meta.setdefault(GUARD_METADATA_KEY, {})["pii_outputs"] = flagged
            elif isinstance(cell_meta.get(GUARD_METADATA_KEY), dict):
                cell_meta[GUARD_METADATA_KEY].pop("pii_outputs", None)

    return hook


def _plain(out: Any) -> str:
    o = dict(out)
    o.pop("metadata", None)
    return json.dumps(o, sort_keys=True, default=str)
