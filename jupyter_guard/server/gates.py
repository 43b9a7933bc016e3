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
from typing import Any

from tornado import web

from ..errors import GovernanceRefusal
from ..export.governance import Assessment, NotebookExports
from ..governor import Request
from ..policy import DENY, REDACT
from ..sensitivity import display_copy

log = logging.getLogger(__name__)

JUSTIFICATION_HEADER = "X-Jupyter-Guard-Justification"
PURPOSE_HEADER = "X-Jupyter-Guard-Purpose"
MAX_HEADER_TEXT = 2000

#: the redacted notebook the wrapped ContentsManager.get serves for this request: (path, nb)
_serving: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar("jupyter_guard_serving", default=None)


class ExportGate:
    """The server's side of notebook exports: what only the server knows (its kernels' purposes
    and secrets) handed to the core's :class:`~jupyter_guard.export.governance.NotebookExports`."""

    def __init__(self, app: Any, exports: NotebookExports):
        self.app = app
        self.exports = exports

    @property
    def governor(self):
        return self.app.governor

    def known_secrets(self, path: str | None) -> tuple[str, ...]:
        """Every secret handed to a kernel of this notebook (masked wherever it shows)."""
        if not path:
            return ()
        return tuple(sorted({s for b in self.app.kernel_bindings.for_notebook(path) for s in b.masker.secrets}))

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

    def sensitivity(self, path: str | None, nb: Any) -> tuple[dict, Any]:
        return self.exports.sensitivity(path, nb, self.known_secrets(path))

    def assess(self, who: Any, path: str | None, nb: Any, action: str, fmt: str | None,
               justification: str | None = None, purpose: str | None = None) -> Assessment:
        """Decide one export/download of a notebook without recording it — blocking."""
        return self.exports.assess(who, path, nb, action, fmt, justification=justification,
                                   purpose=purpose or self.session_purpose(who, path),
                                   known_secrets=self.known_secrets(path))

    def redact(self, a: Assessment, nb: Any) -> tuple[Any, dict]:
        return self.exports.redact(a, nb)


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
    return value.strip()[:MAX_HEADER_TEXT] if value and value.strip() else None


def _path(handler: Any) -> str:
    path = handler.path_kwargs.get("path")
    if path is None and handler.path_args:
        path = handler.path_args[-1]
    return (path or "").strip("/")


def _http_error(status: int, message: str) -> web.HTTPError:
    # tornado formats log_message with %; JupyterHandler too. Keep the text literal.
    return web.HTTPError(status, message.replace("%", " percent"), reason="Refused by jupyter_guard")


def install_gates(app: Any, exports: NotebookExports) -> ExportGate:
    """Wrap the configured authorizer and the contents manager's get (see the module doc)."""
    gate = ExportGate(app, exports)
    kinds = _handler_kinds()
    authorizer = app.serverapp.authorizer
    original = authorizer.is_authorized

    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    def is_authorized(handler, user, action, resource):
        allowed = original(handler, user, action, resource)
        if isinstance(handler, KernelWebsocketHandler) and app.shared_server:
            return _own_kernel_only(app, handler, user, allowed)
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
    _gate_moves(gate, cm)
    return gate


def _gate_moves(gate: ExportGate, cm: Any) -> None:
    """Copies and renames made through the server carry governance.

    A copy (or the new place of a rename) of a governed data file is governed as its source: the
    move is decided as a read of the source (nothing is served, so ``redact`` may copy), then a
    ``lineage`` record names the dataset and the new path, and the governor governs that path as
    the dataset from then on (after a restart too: it reads those records back). A copy that
    cannot be recorded is removed again. A copied or renamed notebook keeps its history: its
    ``lineage`` record names its source, and its sensitivity follows it. Only an async contents
    manager (jupyter_server's default) can be gated here.
    """
    copy, rename, delete = cm.copy, cm.rename_file, cm.delete_file
    if not (inspect.iscoroutinefunction(copy) and inspect.iscoroutinefunction(rename)):
        log.warning("jupyter_guard: the contents manager %s is synchronous; copies and renames of governed "
                    "files are NOT gated", type(cm).__name__)
        return

    async def guarded_copy(from_path, to_path=None):
        who, dataset = await _decide_move(gate, from_path, "copy")
        model = await copy(from_path, to_path)
        new = (model or {}).get("path") or to_path
        if dataset is None:
            await _notebook_lineage(gate, who, from_path, new, "copy")
            return model
        try:
            await _govern_copy(gate, who, dataset, from_path, new, "copy")
        except BaseException:
            await _maybe_await(delete(new))  # never leave an ungoverned copy behind
            raise
        return model

    async def guarded_rename(old_path, new_path):
        who, dataset = await _decide_move(gate, old_path, "rename")
        if dataset is not None:  # governed at the new place before the file is there
            await _govern_copy(gate, who, dataset, old_path, new_path, "rename")
        result = await rename(old_path, new_path)
        if dataset is None:
            await _notebook_lineage(gate, who, old_path, new_path, "rename")
        return result

    cm.copy, cm.rename_file = guarded_copy, guarded_rename


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value


async def _decide_move(gate: ExportGate, path: str, via: str):
    """(who, the governed dataset's name or None); a refusal is the 403 with who/what/why/who-to-ask."""
    from .bindings import kernel_owner, request_user

    who = gate.app.principal_for(request_user.get() or kernel_owner(gate.app))
    path = (path or "").strip("/")
    if path.endswith(".ipynb"):
        return who, None
    try:
        res = gate.governor.catalog.resolve(path, "path")
    except ValueError as e:
        raise _http_error(400, f"{path!r} is not a path the catalog can resolve: {e}") from e
    if res.dataset is None:
        return who, None
    req = Request(who, "read", target=path, kind="path", event_type=via)
    try:
        await gate.governor.decide(req, details={"via": via})
    except GovernanceRefusal as e:
        raise _http_error(e.status, f"{via.capitalize()} refused: {e} The {via} would stay governed as "
                                    f"'{res.dataset.name}', and it is decided like a read of it.") from e
    return who, res.dataset.name


async def _govern_copy(gate: ExportGate, who, dataset: str, old: str, new: str | None, via: str) -> None:
    """The copy (or new name) is governed as its source: the governor records it, then governs it."""
    new = (new or "").strip("/")
    ds = gate.governor.catalog.datasets.get(dataset)
    if not new or ds is None:
        raise _http_error(400, f"a {via} of governed data needs a name: {new!r}")
    try:
        await gate.governor.derive(who, new, [ds], via=via, source=old.strip("/"))
    except ValueError as e:
        raise _http_error(400, str(e)) from e
    except GovernanceRefusal as e:
        raise _http_error(e.status, str(e)) from e


async def _notebook_lineage(gate: ExportGate, who, old: str, new: str | None, via: str) -> None:
    old, new = (old or "").strip("/"), (new or "").strip("/")
    if not new or not old.endswith(".ipynb"):
        return
    try:
        await gate.governor.record_fact("lineage", user=who.user, action=via, target=new, notebook=new,
                                        details={"from": old}, refusal=f"the {via} of {old} was not recorded")
    except GovernanceRefusal:
        log.exception("jupyter_guard: the %s of %s to %s is done but not recorded", via, old, new)


def _own_kernel_only(app: Any, handler: Any, user: Any, allowed: Any):
    """On a server shared by several users, a kernel's channels are its own user's: another user
    connecting would run code (and read the guard's token) as that user."""

    async def decide():
        ok = await allowed if inspect.isawaitable(allowed) else allowed
        if not ok:
            return False
        binding = app.kernel_bindings.by_kernel(getattr(handler, "kernel_id", "") or "")
        if binding is not None and not app.acts_for(binding, app.principal_for(user)):
            raise _http_error(403, f"{app.principal_for(user).user} may not connect to kernel {binding.kernel_id}: "
                                   "it runs for another user")
        return True

    return decide()


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
    who = gate.app.principal_for(user)
    justification = _arg(handler, JUSTIFICATION_HEADER, "justification")
    purpose = _arg(handler, PURPOSE_HEADER, "purpose")
    if kind == "nbconvert_post":
        await _gate_post(gate, handler, who, justification, purpose)
        return
    path = _path(handler)
    if "\x00" in path:  # no file has such a name; never let it reach a resolver as a 500
        raise _http_error(400, "the path holds a NUL character")
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
        # raw text/base64 of a notebook is a download; opening one's own notebook in the editor is
        # not, but opening a notebook into which only OTHER users' kernels read governed data is
        if handler.get_query_argument("format", None) or await _someone_elses(gate, who, path):
            await _gate_notebook(gate, handler, who, path, "download", None, justification, purpose, serve="contents")
        return
    await _gate_data_file(gate, handler, who, path, "read", justification, purpose)


def http_refusal(e: GovernanceRefusal) -> web.HTTPError:
    """The one HTTP answer to a refusal from inside the authorizer: status and who/what/why/who-to-ask."""
    return _http_error(e.status, str(e))


async def _someone_elses(gate: ExportGate, who: Any, path: str) -> bool:
    """Whether governed data came into this notebook only through other users' kernels."""
    from ..sensitivity import audit_records

    records = await asyncio.get_running_loop().run_in_executor(None, audit_records, gate.governor.audit, path)
    governed = [r.event for r in records if r.event.dataset and r.event.event_type in
                ("decision", "cell_execution", "credential")]
    return bool(governed) and who.user not in {e.user for e in governed}


async def load_file(handler: Any, path: str) -> bytes:
    from jupyter_core.utils import ensure_async

    model = await ensure_async(handler.contents_manager.get(path, type="file", format="base64", content=True))
    return base64.b64decode(model["content"])


async def _gate_notebook(gate, handler, who, path, action, fmt, justification, purpose, *, serve: str) -> None:
    raw = await load_file(handler, path)
    nb = await _parse(gate, who, path, action, fmt, raw)
    a = await asyncio.get_running_loop().run_in_executor(
        None, gate.assess, who, path, nb, action, fmt, justification, purpose)
    await _serve(gate, handler, a, nb, serve)


async def _parse(gate, who, path, action, fmt, raw):
    """The notebook, or a recorded refusal (422) for something that is not one."""
    from ..export import ExportError, load_notebook

    try:
        return await asyncio.get_running_loop().run_in_executor(None, load_notebook, raw)
    except ExportError as e:
        message = (f"{path or 'the notebook'} cannot be read as a notebook ({e}), so it cannot be checked "
                   f"and is not {action}ed.")
        try:
            await gate.governor.record_fact(action, user=who.user, action=action, target=path, notebook=path,
                                            decision=DENY, reasons=(message[:500],), details={"format": fmt},
                                            refusal=f"{who.user} may not {action} {path}")
        except GovernanceRefusal as refusal:
            raise http_refusal(refusal) from e
        raise _http_error(422, message) from e


async def _serve(gate, handler, a: Assessment, nb, serve: str) -> None:
    """Record the assessed export and serve it: refused, as it is, or redacted."""
    exports = gate.exports
    report = None
    new_nb = None
    if a.effect == REDACT:
        try:
            new_nb, report = await asyncio.get_running_loop().run_in_executor(None, gate.redact, a, nb)
        except Exception as e:  # never serve what could not be redacted
            log.exception("jupyter_guard: redaction of %s failed; export refused", a.path)
            try:
                await exports.record(a, None, refused_for="redaction failed")
            except GovernanceRefusal:
                pass
            raise _http_error(422, f"{a.path} could not be redacted ({type(e).__name__}), so it is not exported.") from e
    try:
        await exports.record(a, report)
    except GovernanceRefusal as e:
        raise _http_error(e.status, a.message if e.status == 403 and a.message else str(e)) from e
    if new_nb is None:
        return
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
    fmt = handler.path_kwargs.get("format")
    try:
        model = json.loads(handler.request.body or b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise _http_error(400, f"the body is not a JSON notebook model: {e}") from e
    if not isinstance(model, dict) or not isinstance(model.get("content"), dict):
        raise _http_error(400, "the body must be a notebook model: {name, path?, content: {...notebook...}}")
    path = model.get("path") if isinstance(model.get("path"), str) else None
    path = path.strip("/") if path else None
    nb = await _parse(gate, who, path, "export", fmt, json.dumps(model["content"]))
    a = await asyncio.get_running_loop().run_in_executor(
        None, gate.assess, who, path, nb, "export", fmt, justification, purpose)
    if a.effect != REDACT and a.outcome.permitted:
        # served as parsed by us (upgraded/validated), so what is recorded is what is converted
        model["content"] = json.loads(json.dumps(nb))
        handler.request.body = json.dumps(model).encode()
    await _serve(gate, handler, a, nb, "body")


async def _gate_data_file(gate, handler, who, path, action, justification, purpose) -> None:
    """A governed data file through /files (download) or the contents API (read)."""
    req = Request(who, action, target=path, kind="path", purpose=purpose, justification=justification,
                  event_type="download" if action == "download" else "decision", serves_redacted=False)
    try:
        await gate.governor.decide(req, details={"via": "files" if action == "download" else "contents"})
    except GovernanceRefusal as e:
        raise http_refusal(e) from e
    except ValueError as e:  # a path the catalog cannot resolve
        raise _http_error(400, f"{path!r} is not a path: {e}") from e


# -- save hook -------------------------------------------------------------------------------


def save_hook(gate: ExportGate):
    """A pre-save hook: the sensitivity display copy; PII outputs of governed notebooks flagged/redacted."""

    def hook(model=None, path=None, contents_manager=None, **kwargs):
        mode = gate.app.save_hook
        if mode == "off" or not model or model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        import nbformat

        from ..export import GUARD_METADATA_KEY
        from ..export.notebook import HEADER_CELL_ID

        path = (path or "").strip("/")
        nb = nbformat.from_dict(copy.deepcopy(model["content"]))
        sens, scanned = gate.sensitivity(path, nb)
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
