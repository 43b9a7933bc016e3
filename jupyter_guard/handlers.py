"""REST API under /jupyter-guard/api/: thin translations from HTTP to the governor.

Every verb is ``@web.authenticated`` then ``@authorized`` (the configured authorizer, e.g.
JupyterHub's, decides first); audit routes additionally need a steward role.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from . import __version__
from .audit import AuditEvent, AuditQuery
from .catalog import PATH, TABLE, URI
from .catalog.loader import NAME_RE
from .errors import AuditError, CredentialError, GuardDenied
from .policy import ACTIONS
from .sources import resolve_source

AUTH_RESOURCE = "jupyter_guard"
API = "/jupyter-guard/api"
MAX_PAGE = 5000


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
    """Datasets the user may discover, with what they may do with each."""

    @web.authenticated
    @authorized
    def get(self):
        who = self.principal()
        query = self.get_query_argument("q", "")
        purpose = self.get_query_argument("purpose", None) or None  # preview under a purpose
        steward = self.guard.is_steward(who)
        policy = self.governor.policy
        out = []
        for ds in self.governor.catalog.search(query):
            if not steward and not policy.decide(who, ds, "discover").permitted:
                continue
            entry = ds.to_dict()
            entry["may"] = {
                action: policy.decide(who, ds, action, purpose=purpose).effect
                for action in ("read", "export", "download")
            }
            out.append(entry)
        self.finish({"datasets": out, "labels": [lab.name for lab in self.governor.catalog.labels]})


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
        try:
            res = self.governor.catalog.resolve(value, kind)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        ds = res.dataset
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
        try:
            limit = min(int(arg("limit", "100")), MAX_PAGE)
            after = arg("after", None)
            query = AuditQuery(
                user=arg("user", None),
                dataset=arg("dataset", None),
                label=arg("label", None),
                decision=arg("decision", None),
                notebook=arg("notebook", None),
                event_type=arg("event_type", None),
                action=arg("action", None),
                since=_time(arg("since", None)),
                until=_time(arg("until", None)),
                after_seq=int(after) if after else None,
                limit=limit,
                descending=arg("order", "desc") != "asc",
            )
        except ValueError as e:
            raise web.HTTPError(400, f"bad audit query: {e}") from e
        records = await asyncio.get_running_loop().run_in_executor(None, self.governor.audit.query, query)
        rows = [r.to_dict() for r in records]
        self.finish({"records": rows, "next": rows[-1]["seq"] if len(rows) == limit else None})


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


class KernelDecideHandler(KernelHandler, DecideHandler):
    """A kernel asks before returning governed data; kernel and notebook come from its binding."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.body()
        context = {"kernel_id": binding.kernel_id, "notebook": binding.notebook,
                   "cell_id": body.get("cell_id"), "msg_id": body.get("msg_id")}
        who = self.guard.principal_for(self.current_user)
        decision, reply = await self.decide(who, body, context, body.get("purpose") or binding.purpose)
        if decision is not None and (decision.dataset is not None or not decision.permitted):
            label = self.governor.catalog.label(decision.label) if decision.label else None
            self.guard.cells.decided(body.get("msg_id"), {
                "dataset": decision.dataset, "label": decision.label, "rank": label.rank if label else -1,
                "effect": decision.effect, "action": decision.action, "target": decision.target,
                "audit_seq": reply["audit_seq"],
            })


class KernelPurposeHandler(KernelHandler):
    """The purpose declared for this kernel's session (``%guard purpose NAME``)."""

    @web.authenticated
    @authorized
    def post(self):
        binding = self.binding()
        purpose = self.json_body().get("purpose")
        if purpose is not None and (not isinstance(purpose, str) or not NAME_RE.match(purpose)):
            raise web.HTTPError(400, "purpose must be a name: letters, digits, '_', '.', '-'")
        binding.purpose = purpose or None
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

    STRINGS = ("msg_id", "cell_id", "purpose", "justification")

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
            purpose=body.get("purpose") or binding.purpose, justification=body.get("justification") or None,
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
        self.guard.cells.decided(body.get("msg_id"), {
            "dataset": source.name, "label": source.label.name, "rank": source.label.rank,
            "effect": "error" if error else decision.effect, "action": "credential", "target": target,
            "audit_seq": record.seq,
        })
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
    (f"{API}/decide", DecideHandler),
    (f"{API}/audit", AuditHandler),
    (f"{API}/audit/verify", AuditVerifyHandler),
    (f"{API}/notebook/sensitivity", NotebookSensitivityHandler),
    (f"{API}/export/preview", ExportPreviewHandler),
    (f"{API}/kernel/decide", KernelDecideHandler),
    (f"{API}/kernel/purpose", KernelPurposeHandler),
    (f"{API}/kernel/keys", KernelKeysHandler),
    (f"{API}/kernel/credential", KernelCredentialHandler),
    (f"{API}/kernel/classification", KernelClassificationHandler),
]
