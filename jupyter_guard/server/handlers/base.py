"""What every route shares: the guard, the principal, the validated body, and the one answer
to a refusal.

Every verb is ``@web.authenticated`` then ``@authorized`` (the configured authorizer, e.g.
JupyterHub's, decides first). A body is checked against the route's schema in the OpenAPI
document (:mod:`jupyter_guard.server.api`) before a handler sees it. A
:class:`~jupyter_guard.errors.GovernanceRefusal` raised by the governor anywhere in a handler
becomes its status (403 refused, 503 cannot record, 502 secret lookup failed) with the
decision as JSON: one mapping for every route.
"""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ...errors import GovernanceRefusal
from ..api import validate_body, validate_query

AUTH_RESOURCE = "jupyter_guard"
API = "/jupyter-guard/api"
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

    @property
    def route(self) -> str:
        """The request's path under the API prefix, as the OpenAPI document names it."""
        path = self.request.path
        return path[path.index(API) + len(API):] if API in path else path

    def json_body(self) -> dict:
        """The request body, checked against this route's schema: a 400 naming the field if not."""
        try:
            return validate_body(self.request.method, self.route, self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e

    def query_args(self) -> dict:
        """The query arguments this route's schema names, typed and checked: a 400 if not."""
        try:
            return validate_query(self.request.method, self.route, self.request.query_arguments)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e

    def require_steward(self):
        who = self.principal()
        if self.guard.service is not None:
            return who  # the guard service decides who is a steward, from the Hub's groups, on every query
        if not self.guard.is_steward(who):
            raise web.HTTPError(403, f"{who.user} is not a data steward; the audit log is for stewards")
        return who

    def write_error(self, status_code: int, **kwargs) -> None:
        """JSON errors as jupyter_server writes them, with the message as written: not its
        ``%s`` format and no doubled ``%`` (``%guard``). A governance refusal answers with its
        own status and the decision."""
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(error, GovernanceRefusal):
            self.set_status(error.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error.body))
            return
        if isinstance(error, web.HTTPError) and error.log_message:
            self.set_header("Content-Type", "application/json")
            if hasattr(error, "get_message"):  # tornado >= 6.5
                message = error.get_message()
            else:
                message = error.log_message % error.args if error.args else error.log_message
            self.finish(json.dumps({"message": message, "reason": error.reason}))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, GovernanceRefusal):  # an answer, not a server error
            self.log.info("jupyter_guard: %s %s refused (%d)", self.request.method, self.request.path, value.status)
            return
        super().log_exception(typ, value, tb)


class KernelHandler(GuardHandler):
    """Routes for kernels: authenticated by the per-kernel token the server gave the kernel."""

    accepts_kernel_token = True  # read by the wrapped identity provider (jupyter_guard.server.bindings)
    kernel_binding = None

    def binding(self):
        if self.kernel_binding is None:
            raise web.HTTPError(403, "kernel routes need the kernel token the server gave the kernel")
        return self.kernel_binding

    def context(self, body: dict) -> dict:
        """The audit context of a kernel's request: kernel and notebook from its binding."""
        binding = self.binding()
        return {"kernel_id": binding.kernel_id, "notebook": binding.notebook,
                "cell_id": body.get("cell_id") or None, "msg_id": body.get("msg_id") or None}

    def noted(self, outcome, *, body: dict, rank: int | None = None) -> None:
        """A recorded decision for this kernel: for its cell's record and its governance indicator."""
        binding, decision = self.binding(), outcome.decision
        if decision.dataset is None and outcome.permitted:
            return
        if rank is None:
            label = self.governor.catalog.label(decision.label) if decision.label else None
            rank = label.rank if label else -1
        audit_seq = outcome.record.seq if outcome.record else None
        msg_id, cell_id = body.get("msg_id") or None, body.get("cell_id") or None
        effect = outcome.effect if outcome.effect == "error" else decision.effect
        self.guard.cells.decided(msg_id, {
            "dataset": decision.dataset, "label": decision.label, "rank": rank, "effect": effect,
            "action": decision.action, "target": decision.target, "audit_seq": audit_seq,
        })
        binding.note(decision, rank=rank, audit_seq=audit_seq, msg_id=msg_id, cell_id=cell_id, effect=effect)


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


async def declare_purpose(handler: GuardHandler, binding, body: dict, via: str) -> None:
    """Set a kernel's purpose from ``%guard purpose`` (via kernel) or the toolbar (via ui).

    Recorded (event ``purpose``) before it takes effect and before the answer.
    """
    purpose = body.get("purpose")
    who = handler.principal()
    notebook = await handler.guard.cells.notebook(binding.kernel_id, binding)
    await handler.governor.record_fact(
        "purpose", user=who.user, action="declare_purpose", purpose=purpose, kernel_id=binding.kernel_id,
        notebook=notebook, details={"previous": binding.purpose, "via": via},
        refusal=f"the purpose of kernel {binding.kernel_id} was not changed",
    )
    binding.set_purpose(purpose)
