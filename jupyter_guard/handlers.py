"""REST API under /jupyter-guard/api/: thin translations from HTTP to the governor.

Every verb is ``@web.authenticated`` then ``@authorized`` (the configured authorizer, e.g.
JupyterHub's, decides first); audit routes additionally need a steward role. What a route
does that must be on the audit log is recorded before it answers (``GuardHandler.record``:
a log that cannot record is a 503, fail closed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from datetime import datetime

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

from . import __version__
from .audit import AuditEvent, AuditQuery, AuditRecord
from .audit.export import FORMATS, MEDIA_TYPES, RecordWriter
from .catalog import PATH, TABLE, URI
from .catalog.folders import governing
from .catalog.loader import NAME_RE
from .errors import AuditError, CredentialError, GuardDenied
from .policy import ACTIONS
from .secret_mask import mask_secrets
from .sources import resolve_source

AUTH_RESOURCE = "jupyter_guard"
API = "/jupyter-guard/api"
MAX_PAGE = 5000
#: records per query while an export streams (each chunk is flushed before the next query)
EXPORT_PAGE = 5000
#: the filters of GET audit and GET audit/export (besides since/until)
AUDIT_FILTERS = ("user", "dataset", "label", "decision", "notebook", "event_type", "action")
MAX_PATHS = 2000  # paths per POST catalog/labels (a big folder listing)
MAX_REASON = 2000  # characters of an access request's reason
KERNEL_ID = r"(?P<kernel_id>[\w-]+)"


class GuardHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def guard(self):
        return self.settings["jupyter_guard"]

    @property
    def governor(self):
        return self.guard.governor

    def principal(self):
        return self.guard.principal_for(self.current_user)

    def json_body(self) -> dict:
        """The request body as a JSON object, or a 400 saying why not."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, f"body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return body

    def require_steward(self):
        who = self.principal()
        if not self.guard.is_steward(who):
            raise web.HTTPError(403, f"{who.user} is not a data steward; the audit log is for stewards")
        return who

    def write_error(self, status_code: int, **kwargs) -> None:
        """JSON errors as jupyter_server writes them, with the message as written: not its
        ``%s`` format (``HTTPError(503, "%s: ...", value)``) and no doubled ``%`` (``%guard``)."""
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(error, web.HTTPError) and error.log_message:
            self.set_header("Content-Type", "application/json")
            if hasattr(error, "get_message"):  # tornado >= 6.5
                message = error.get_message()
            else:
                message = error.log_message % error.args if error.args else error.log_message
            self.finish(json.dumps({"message": message, "reason": error.reason}))
            return
        super().write_error(status_code, **kwargs)

    async def record(self, event: AuditEvent, refusal: str) -> AuditRecord:
        """Record ``event`` durably before answering; 503 when the audit log cannot (fail closed).

        ``refusal`` says what is then not done, e.g. "the purpose was not changed".
        """
        try:
            return await self.governor.record_async(event)
        except AuditError as e:
            raise web.HTTPError(
                503, "%s: the audit log cannot record it (%s), and this is never done unaudited. "
                "Tell your JupyterHub admin.", refusal, e,
            ) from e

    async def declare_purpose(self, binding, body: dict, via: str) -> None:
        """Set a kernel's purpose from ``%guard purpose`` (via kernel) or the toolbar (via ui).

        Validated, then recorded (event ``purpose``) before it takes effect and before the answer.
        """
        purpose = body.get("purpose")
        if purpose is not None and (not isinstance(purpose, str) or not NAME_RE.match(purpose)):
            raise web.HTTPError(400, "purpose must be a name: letters, digits, '_', '.', '-'")
        who = self.principal()
        notebook = await self.guard.cells.notebook(binding.kernel_id, binding)
        await self.record(
            AuditEvent(
                event_type="purpose", user=who.user, action="declare_purpose", purpose=purpose,
                kernel_id=binding.kernel_id, notebook=notebook, details={"previous": binding.purpose, "via": via},
            ),
            refusal=f"the purpose of kernel {binding.kernel_id} was not changed",
        )
        binding.set_purpose(purpose)


class StatusHandler(GuardHandler):
    @web.authenticated
    @authorized
    def get(self):
        who = self.principal()
        gov = self.governor.governance
        summary = gov.catalog.summary()
        summary["loaded_at"] = self.guard.loaded_at
        summary["error"] = self.guard.last_catalog_error
        self.finish(
            {
                "version": __version__,
                "user": {**who.to_dict(), "steward": self.guard.is_steward(who)},
                "catalog": summary,
                "audit": {"store": self.governor.audit.store.describe()},
            }
        )


class CatalogHandler(GuardHandler):
    """Datasets and data sources the user may discover, with what they may do with each."""

    @web.authenticated
    @authorized
    def get(self):
        who = self.principal()
        query = self.get_query_argument("q", "")
        purpose = self.get_query_argument("purpose", None) or None  # preview under a purpose
        gov = self.governor.governance  # one snapshot, even if a reload swaps it meanwhile
        policy, visible = gov.policy, self.guard.discoverer(who, gov.policy)
        datasets = []
        for ds in gov.catalog.search(query):
            if visible(ds):
                may = {action: policy.decide(who, ds, action, purpose=purpose).effect
                       for action in ("read", "export", "download")}
                datasets.append({**ds.to_dict(), "may": may})
        sources = []
        for src in gov.catalog.search_sources(query):
            as_ds = src.as_dataset()
            if visible(as_ds):
                effect = policy.decide(who, as_ds, "credential", target=f"source:{src.name}", purpose=purpose).effect
                sources.append({**src.to_dict(), "may": {"credential": effect}})
        self.finish({
            "datasets": datasets,
            "sources": sources,
            "labels": [label.to_dict() for label in gov.catalog.labels],
            "purposes": self.guard.known_purposes(),
        })


class CatalogLabelsHandler(GuardHandler):
    """Label badges for the file browser: ``{"paths": [...]}`` relative to the server root.

    A path that is a dataset's location gets that dataset (``contains: false``); a folder that
    holds governed data gets the most sensitive dataset below it the user may discover
    (``contains: true``); anything else, or a dataset the user may not discover, gets null.
    """

    @web.authenticated
    @authorized
    async def post(self):
        paths = self.json_body().get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise web.HTTPError(400, "paths must be a list of strings: paths relative to the server root")
        if len(paths) > MAX_PATHS:
            raise web.HTTPError(400, f"at most {MAX_PATHS} paths per request (got {len(paths)}); ask in batches")
        who = self.principal()
        gov = self.governor.governance
        visible = self.guard.discoverer(who, gov.policy)

        def badges() -> dict:  # resolving touches the disk (symlinks): off the event loop
            entries = {}
            for path in paths:
                try:
                    found = governing(gov.catalog, path.lstrip("/"), visible)
                except ValueError as e:
                    raise web.HTTPError(400, "path %r: %s", path, e) from e
                entries[path] = _path_label(*found) if found else None
            return entries

        entries = await asyncio.get_running_loop().run_in_executor(None, badges)
        self.finish({"entries": entries, "labels": [label.to_dict() for label in gov.catalog.labels]})


def _path_label(ds, contains: bool) -> dict:
    return {
        "dataset": ds.name, "label": ds.label.name, "rank": ds.label.rank, "color": ds.label.color,
        "description": ds.description, "steward": ds.steward.to_dict() if ds.steward else None,
        "purposes": list(ds.purposes), "contains": contains,
    }


class ResolveHandler(GuardHandler):
    """Which dataset and label govern a path (relative to the server root), URI or table."""

    @web.authenticated
    @authorized
    def get(self):
        args = {kind: self.get_query_argument(kind, None) for kind in (PATH, URI, TABLE)}
        given = [(k, v) for k, v in args.items() if v]
        if len(given) != 1:
            raise web.HTTPError(400, "give exactly one of path=, uri=, table=")
        kind, value = given[0]
        gov = self.governor.governance
        try:
            res = gov.catalog.resolve(value, kind)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        ds = res.dataset
        if ds is not None and not self.guard.discoverer(self.principal(), gov.policy)(ds):
            ds = None  # a dataset the user may not discover is not revealed, as in catalog/labels
        self.finish(
            {
                "kind": res.kind,
                "target": res.target,
                "dataset": ds.name if ds else None,
                "label": ds.label.name if ds else None,
                "steward": str(ds.steward) if ds and ds.steward else None,
                "purposes": list(ds.purposes) if ds else [],
            }
        )


class DecideHandler(GuardHandler):
    """Decide (and record) one action of the authenticated user on one target."""

    #: request fields that must be strings when given; the last five are audit context
    STRINGS = ("purpose", "justification", "kernel_id", "session_id", "notebook", "cell_id", "msg_id")

    def body(self) -> dict:
        body = self.json_body()
        if not isinstance(body.get("target"), str) or not body["target"]:
            raise web.HTTPError(400, "target (a path, URI or table name) is required")
        if body.get("kind") not in (None, PATH, URI, TABLE):
            raise web.HTTPError(400, "kind must be path, uri or table")
        if not isinstance(body.get("action", "read"), str) or not body.get("action", "read"):
            raise web.HTTPError(400, f"action must be a name such as {', '.join(ACTIONS)}")
        if not all(body.get(k) is None or isinstance(body[k], str) for k in self.STRINGS):
            raise web.HTTPError(400, f"{', '.join(self.STRINGS)} must be strings")
        return body

    async def decide(self, who, body: dict, context: dict, purpose: str | None):
        """Decide and answer; a decision that cannot be recorded is a 503 denial (fail closed)."""
        try:
            decision, record = await self.governor.decide_async(
                who,
                body["target"],
                body.get("action", "read"),
                kind=body.get("kind"),
                purpose=purpose,
                justification=body.get("justification") or None,
                context=context,
            )
        except GuardDenied as e:
            self.set_status(503)
            self.finish({**e.decision.to_dict(), "message": str(e), "audit_seq": None})
            return None, None
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        reply = decision.to_dict()
        reply["audit_seq"] = record.seq if record else None
        if not decision.permitted:
            reply["message"] = decision.message()
        self.finish(reply)
        return decision, reply

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        context = {k: body.get(k) for k in self.STRINGS[2:]}
        await self.decide(self.principal(), body, context, body.get("purpose") or None)


class AuditHandler(GuardHandler):
    """Query the audit log (stewards only), newest first by default, paged by `after` seq."""

    @web.authenticated
    @authorized
    async def get(self):
        self.require_steward()
        arg = self.get_query_argument
        filters = audit_filters(self)
        try:
            limit = min(int(arg("limit", "100")), MAX_PAGE)
            after = arg("after", None)
            query = AuditQuery(
                **filters,
                after_seq=int(after) if after else None,
                limit=limit,
                descending=arg("order", "desc") != "asc",
            )
        except ValueError as e:
            raise web.HTTPError(400, f"bad audit query: {e}") from e
        records = await asyncio.get_running_loop().run_in_executor(None, self.governor.audit.query, query)
        rows = [r.to_dict() for r in records]
        self.finish({"records": rows, "next": rows[-1]["seq"] if len(rows) == limit else None})


class AuditExportHandler(GuardHandler):
    """Every record matching the filters of GET audit, oldest first, as a CSV or JSON Lines file.

    Stewards only. The export is itself recorded (event ``audit_export``) before anything is
    sent. The records stream in pages, each flushed before the next is read, in the formats
    of ``jupyter guard audit export`` (the same writer: the same bytes for the same records).
    """

    @web.authenticated
    @authorized
    async def get(self):
        who = self.require_steward()
        fmt = self.get_query_argument("format", "jsonl")
        if fmt not in FORMATS:
            raise web.HTTPError(400, f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
        media_type = f"{MEDIA_TYPES[fmt]}; charset=utf-8"
        filters = audit_filters(self)
        await self.record(
            AuditEvent(event_type="audit_export", user=who.user, action="audit_export",
                       details={"format": fmt, "filters": {k: v for k, v in filters.items() if v is not None}}),
            refusal=f"{who.user} may not export the audit log now",
        )
        self.set_header("Content-Type", media_type)
        self.set_header("Content-Disposition", f'attachment; filename="jupyter-guard-audit.{fmt}"')
        buffer = io.StringIO()
        writer = RecordWriter(fmt, buffer)
        query = AuditQuery(**filters, limit=EXPORT_PAGE)

        def page() -> tuple[str, list]:
            records = self.governor.audit.query(query)
            writer.write(records)
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text, records

        loop = asyncio.get_running_loop()
        while True:
            text, records = await loop.run_in_executor(None, page)
            if text:
                self.write(text)
            try:
                await self.flush()
            except StreamClosedError:  # the steward went away: stop reading
                return
            if len(records) < EXPORT_PAGE:
                break
            query.after_seq = records[-1].seq
        self.finish(set_content_type=media_type)


def audit_filters(handler: GuardHandler) -> dict:
    """The filters of GET audit and GET audit/export from the query string (empty = not given)."""
    arg = handler.get_query_argument
    filters = {name: arg(name, None) or None for name in AUDIT_FILTERS}
    try:
        filters.update(since=_time(arg("since", None) or None), until=_time(arg("until", None) or None))
    except ValueError as e:
        raise web.HTTPError(400, f"bad audit query: {e}") from e
    return filters


class AuditVerifyHandler(GuardHandler):
    """Verify the hash chain (stewards only)."""

    @web.authenticated
    @authorized
    async def get(self):
        self.require_steward()
        result = await asyncio.get_running_loop().run_in_executor(None, self.governor.audit.verify)
        self.finish(dataclasses.asdict(result))


class KernelHandler(GuardHandler):
    """Routes for kernels: authenticated by the per-kernel token the server gave the kernel."""

    accepts_kernel_token = True  # read by the wrapped identity provider (jupyter_guard.kernels)
    kernel_binding = None

    def binding(self):
        if self.kernel_binding is None:
            raise web.HTTPError(403, "kernel routes need the kernel token the server gave the kernel")
        return self.kernel_binding

    def noted(self, binding, decision, *, rank: int, audit_seq: int | None, msg_id: str | None,
              cell_id: str | None, effect: str | None = None) -> None:
        """A recorded decision for this kernel: for its cell's record and its governance indicator."""
        effect = effect or decision.effect
        self.guard.cells.decided(msg_id, {
            "dataset": decision.dataset, "label": decision.label, "rank": rank, "effect": effect,
            "action": decision.action, "target": decision.target, "audit_seq": audit_seq,
        })
        binding.note(decision, rank=rank, audit_seq=audit_seq, msg_id=msg_id, cell_id=cell_id, effect=effect)


class KernelDecideHandler(KernelHandler, DecideHandler):
    """A kernel asks before returning governed data; kernel, notebook and purpose come from its
    binding (the purpose is the server's: a ``purpose`` in the body is ignored)."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.body()
        context = {"kernel_id": binding.kernel_id, "notebook": binding.notebook,
                   "cell_id": body.get("cell_id"), "msg_id": body.get("msg_id")}
        who = self.guard.principal_for(self.current_user)
        decision, reply = await self.decide(who, body, context, binding.purpose)
        if decision is not None and (decision.dataset is not None or not decision.permitted):
            label = self.governor.catalog.label(decision.label) if decision.label else None
            self.noted(binding, decision, rank=label.rank if label else -1, audit_seq=reply["audit_seq"],
                       msg_id=body.get("msg_id"), cell_id=body.get("cell_id"))


class KernelPurposeHandler(KernelHandler):
    """The purpose declared for this kernel's session (``%guard purpose NAME``); recorded."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        await self.declare_purpose(binding, self.json_body(), via="kernel")
        self.finish({"purpose": binding.purpose, "known": self.guard.known_purposes()})

    @web.authenticated
    @authorized
    def get(self):
        binding = self.binding()
        self.finish({"purpose": binding.purpose, "known": self.guard.known_purposes()})


class KernelClassificationHandler(KernelHandler):
    """A kernel proposes column classifications for ungoverned data it read (policy asked).

    Recorded as a ``classification_proposal`` event for stewards: column names, entity
    names and shares of sampled values — never the values.
    """

    MAX_COLUMNS = 500

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.json_body()
        target, proposal = body.get("target"), body.get("proposal")
        if not isinstance(target, str) or not isinstance(proposal, dict) or len(proposal) > self.MAX_COLUMNS:
            raise web.HTTPError(400, "target (string) and proposal ({column: {entity, rule, share}}) are required")
        clean = {}
        for column, p in proposal.items():
            if not (isinstance(p, dict) and isinstance(p.get("entity"), str) and isinstance(p.get("rule"), str)
                    and isinstance(p.get("share", 0), (int, float))):
                raise web.HTTPError(400, f"proposal for column {column!r} needs entity, rule and share")
            clean[str(column)[:200]] = {"entity": p["entity"][:64], "rule": p["rule"][:16], "share": float(p.get("share", 0))}
        res = self.governor.catalog.resolve(target, body.get("kind") if body.get("kind") in (PATH, URI, TABLE) else None)
        who = self.guard.principal_for(self.current_user)
        record = await self.governor.record_async(AuditEvent(
            event_type="classification_proposal", user=who.user, action="classify", target=res.target,
            dataset=res.dataset.name if res.dataset else None, kernel_id=binding.kernel_id,
            notebook=binding.notebook, cell_id=body.get("cell_id") if isinstance(body.get("cell_id"), str) else None,
            msg_id=body.get("msg_id") if isinstance(body.get("msg_id"), str) else None,
            details={"proposal": clean},
        ))
        self.finish({"audit_seq": record.seq})


class KernelCredentialHandler(KernelHandler):
    """A kernel asks for a data source's connection URL with its secret (``connect("name")``).

    Policy decides the ``credential`` action on the source as on a dataset of its label; the
    decision is recorded durably *before* any answer (event ``credential``, never the secret).
    Permitted: the secret is looked up through the provider chain (nothing cached, so a
    rotated secret is used at once), remembered on the kernel's binding so the server masks
    it in that kernel's outputs, and returned with the rendered URL.
    """

    STRINGS = ("msg_id", "cell_id", "purpose", "justification")  # purpose: ignored (the binding's applies)

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.json_body()
        name = body.get("source")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(400, "source (the name of a data source in the catalog) is required")
        if not all(body.get(k) is None or isinstance(body[k], str) for k in self.STRINGS):
            raise web.HTTPError(400, f"{', '.join(self.STRINGS)} must be strings or null")
        gov = self.governor.governance  # one snapshot, even if a reload swaps it meanwhile
        source = gov.catalog.sources.get(name)
        if source is None:
            known = ", ".join(sorted(gov.catalog.sources)) or "none"
            self.set_status(404)
            self.finish({"message": f"no data source {name!r} in the catalog; sources: {known}"})
            return
        who = self.guard.principal_for(self.current_user)
        target = f"source:{source.name}"
        decision = gov.policy.decide(
            who, source.as_dataset(), "credential", target=target,
            purpose=binding.purpose, justification=body.get("justification") or None,
        )
        resolved, error = None, None
        if decision.permitted:
            try:
                chain = self.guard.credentials
                resolved = await asyncio.get_running_loop().run_in_executor(None, resolve_source, source, chain)
            except CredentialError as e:
                error = str(e)
        event = AuditEvent(
            event_type="credential",
            user=decision.user,
            action="credential",
            target=target,
            dataset=source.name,
            label=source.label.name,
            decision="error" if error else decision.effect,
            reasons=(*decision.reasons, error) if error else decision.reasons,
            purpose=decision.purpose,
            justification=decision.justification,
            kernel_id=binding.kernel_id,
            notebook=binding.notebook,
            cell_id=body.get("cell_id"),
            msg_id=body.get("msg_id"),
            details={"provider": resolved.provider if resolved else None, "rule": decision.rule,
                     "permitted": decision.permitted and not error, "credential": source.credential},
        )
        try:
            record = await self.governor.record_async(event)
        except AuditError as e:  # fail closed: no secret leaves the server unaudited
            self.set_status(503)
            self.finish({
                **decision.to_dict(), "effect": "deny", "permitted": False, "audit_seq": None,
                "message": f"{who.user} may not use data source {source.name!r}: the audit log cannot record "
                           f"this ({e}), and credentials are never handed out unaudited. Tell your JupyterHub admin.",
            })
            return
        self.noted(binding, decision, rank=source.label.rank, audit_seq=record.seq, msg_id=body.get("msg_id"),
                   cell_id=body.get("cell_id"), effect="error" if error else None)
        reply = {**decision.to_dict(), "source": source.name, "audit_seq": record.seq}
        if error:
            self.set_status(502)
            self.finish({"message": error, "source": source.name, "audit_seq": record.seq})
            return
        if not decision.permitted:
            self.finish({**reply, "message": decision.message()})
            return
        binding.secrets.update(resolved.secrets)
        self.finish({**reply, "url": resolved.url, "secrets": list(resolved.secrets), "provider": resolved.provider})


class OwnKernelHandler(GuardHandler):
    """Routes about one kernel for the browser user (not the kernel's token): only the user the
    kernel acts for may use them; anyone else gets 403, an unknown kernel 404."""

    def owned(self, kernel_id: str):
        binding = self.guard.kernel_bindings.by_kernel(kernel_id)
        if binding is None or kernel_id not in self.kernel_manager:
            raise web.HTTPError(404, f"no running kernel {kernel_id}")
        who = self.principal()
        if not self.guard.acts_for(binding, who):
            raise web.HTTPError(403, f"{who.user} may not see or change the governance of kernel {kernel_id}: "
                                     "it runs for another user")
        return binding


class KernelGovernanceHandler(OwnKernelHandler):
    """A kernel's governance for its notebook's indicator: purpose, datasets, refusals."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str):
        self.finish(await self.guard.kernel_governance(self.owned(kernel_id)))


class KernelGovernancePurposeHandler(OwnKernelHandler):
    """Set a kernel's purpose from the notebook toolbar: ``{"purpose": NAME | null}``; recorded."""

    @web.authenticated
    @authorized
    async def post(self, kernel_id: str):
        binding = self.owned(kernel_id)
        await self.declare_purpose(binding, self.json_body(), via="ui")
        self.finish(await self.guard.kernel_governance(binding))


class AccessRequestHandler(GuardHandler):
    """A researcher asks the steward for access: recorded (event ``access_request``) for stewards.

    ``{"dataset", "reason", "action"?, "notebook"?, "kernel_id"?}``. The dataset (or data
    source) must be one the user may discover; any other name gets the same 404, so the
    route does not reveal what exists. The reason is stored with secrets masked.
    """

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        name, reason, action = body.get("dataset"), body.get("reason"), body.get("action") or "read"
        if not isinstance(name, str) or not name:
            raise web.HTTPError(400, "dataset (the name of a dataset in the catalog) is required")
        if not isinstance(reason, str) or not reason.strip():
            raise web.HTTPError(400, "reason is required: say what you need the data for")
        reason = reason.strip()
        if len(reason) > MAX_REASON:
            raise web.HTTPError(400, f"reason is {len(reason)} characters; at most {MAX_REASON}")
        if action not in ACTIONS:
            raise web.HTTPError(400, f"action must be one of {', '.join(ACTIONS)}")
        if not all(body.get(k) is None or isinstance(body[k], str) for k in ("notebook", "kernel_id")):
            raise web.HTTPError(400, "notebook and kernel_id must be strings or null")
        who = self.principal()
        gov = self.governor.governance
        ds, target = gov.catalog.datasets.get(name), f"dataset:{name}"
        if ds is None and name in gov.catalog.sources:
            ds, target = gov.catalog.sources[name].as_dataset(), f"source:{name}"
        if ds is None or not self.guard.discoverer(who, gov.policy)(ds):
            raise web.HTTPError(404, f"no dataset {name!r} in the catalog that {who.user} can see")
        masked = await asyncio.get_running_loop().run_in_executor(None, mask_secrets, reason)
        steward = str(ds.steward) if ds.steward else None
        record = await self.record(
            AuditEvent(
                event_type="access_request", user=who.user, action=action, target=target, dataset=ds.name,
                label=ds.label.name, decision="requested", justification=masked,
                notebook=body.get("notebook"), kernel_id=body.get("kernel_id"), details={"steward": steward},
            ),
            refusal=f"the request for access to {name!r} was not sent",
        )
        reviewer = f"{steward}, the steward of {name!r}, reviews it" if steward else "the data stewards review it"
        self.set_status(201)
        self.finish({
            "audit_seq": record.seq,
            "dataset": ds.name,
            "steward": ds.steward.to_dict() if ds.steward else None,
            "message": f"Your request to {action} {name!r} was recorded (#{record.seq}); {reviewer}.",
        })


class KernelKeysHandler(KernelHandler):
    """Keys the kernel needs to redact: the pseudonym key and the stewards' public key."""

    @web.authenticated
    @authorized
    def get(self):
        self.binding()
        keys = self.guard.redaction_keys()
        self.finish(keys)


class NotebookSensitivityHandler(GuardHandler):
    """A notebook's sensitivity for the UI: from the audit log plus a scan of its outputs."""

    @web.authenticated
    @authorized
    async def get(self):
        path = (self.get_query_argument("path", "") or "").strip("/")
        if not path.endswith(".ipynb"):
            raise web.HTTPError(400, "path= names a notebook (.ipynb) relative to the server root")
        nb = await self._notebook(path)
        sens, _ = await asyncio.get_running_loop().run_in_executor(None, self.guard.gates.sensitivity_of, path, nb)
        sens.pop("cell_reads", None)
        self.finish(sens)

    async def _notebook(self, path: str):
        from .export import ExportError, load_notebook
        from .gates import _load

        raw = await _load(self, path)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, load_notebook, raw)
        except ExportError as e:
            raise web.HTTPError(422, f"{path} cannot be read as a notebook: {e}") from e


class ExportPreviewHandler(NotebookSensitivityHandler):
    """What an export would do (refused, raw, redacted: counts; blocked cells), without recording."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        path, fmt = body.get("path"), body.get("format", "html")
        action = body.get("action", "export")
        if not isinstance(path, str) or not path.strip("/").endswith(".ipynb") or not isinstance(fmt, str):
            raise web.HTTPError(400, "path (a notebook, .ipynb) and format (e.g. html) are required")
        if action not in ("export", "download"):
            raise web.HTTPError(400, "action is export or download")
        path = path.strip("/")
        just = body.get("justification") if isinstance(body.get("justification"), str) else None
        purpose = body.get("purpose") if isinstance(body.get("purpose"), str) else None
        nb = await self._notebook(path)
        gates, loop = self.guard.gates, asyncio.get_running_loop()
        assessment, _ = await loop.run_in_executor(None, gates.assess, self.principal(), path, nb, action, fmt, just, purpose)
        reply = assessment.to_dict()
        reply["redaction"] = None
        if assessment.effect == "redact":
            _, reply["redaction"] = await loop.run_in_executor(None, gates.redact, assessment, nb)
        self.finish(reply)


def _time(value: str | None) -> str | None:
    if value is None:
        return None
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # raises ValueError on nonsense
    return value


default_handlers = [
    (f"{API}/status", StatusHandler),
    (f"{API}/catalog", CatalogHandler),
    (f"{API}/catalog/resolve", ResolveHandler),
    (f"{API}/catalog/labels", CatalogLabelsHandler),
    (f"{API}/decide", DecideHandler),
    (f"{API}/audit", AuditHandler),
    (f"{API}/audit/verify", AuditVerifyHandler),
    (f"{API}/audit/export", AuditExportHandler),
    (f"{API}/kernels/{KERNEL_ID}", KernelGovernanceHandler),
    (f"{API}/kernels/{KERNEL_ID}/purpose", KernelGovernancePurposeHandler),
    (f"{API}/access-requests", AccessRequestHandler),
    (f"{API}/notebook/sensitivity", NotebookSensitivityHandler),
    (f"{API}/export/preview", ExportPreviewHandler),
    (f"{API}/kernel/decide", KernelDecideHandler),
    (f"{API}/kernel/purpose", KernelPurposeHandler),
    (f"{API}/kernel/keys", KernelKeysHandler),
    (f"{API}/kernel/credential", KernelCredentialHandler),
    (f"{API}/kernel/classification", KernelClassificationHandler),
]
