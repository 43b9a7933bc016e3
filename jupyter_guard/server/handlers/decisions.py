"""Decisions asked for by browsers and kernels: reads, credentials, purposes, proposals, access
requests. Each goes through the governor, which decides and records before the answer."""

from __future__ import annotations


from jupyter_server.auth.decorator import authorized
from tornado import web

from ...errors import Refused
from ...governor import Request
from ...service.handlers import stream_read
from ...service.protocol import outcome_from_answer
from .base import GuardHandler, KernelHandler, OwnKernelHandler, declare_purpose

#: the audit context fields a browser may give with a decision request
CONTEXT = ("kernel_id", "session_id", "notebook", "cell_id", "msg_id")


class DecideHandler(GuardHandler):
    """Decide (and record) one action of the authenticated user on one target."""

    def request_for(self, who, body: dict, *, purpose, context: dict) -> Request:
        return Request(who, body.get("action") or "read", target=body["target"], kind=body.get("kind"),
                       purpose=purpose, justification=body.get("justification") or None, context=context)

    async def answer(self, req: Request):
        """Decide and answer 200 (permitted); a refusal is raised as the governor answers it."""
        try:
            outcome = await self.governor.decide(req)
        except ValueError as e:  # a target the catalog cannot resolve
            raise web.HTTPError(400, str(e)) from e
        self.finish(outcome.to_dict())
        return outcome

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        context = {k: body.get(k) for k in CONTEXT}
        await self.answer(self.request_for(self.principal(), body, purpose=body.get("purpose") or None,
                                           context=context))


class KernelDecideHandler(KernelHandler, DecideHandler):
    """A kernel asks before returning governed data; kernel, notebook and purpose come from its
    binding (the purpose is the server's: a ``purpose`` in the body is ignored)."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.json_body()
        req = self.request_for(self.principal(), body, purpose=binding.purpose, context=self.context(body))
        try:
            outcome = await self.answer(req)
        except Refused as e:  # recorded: the indicator and the cell's record show it too
            self.noted(e.outcome, body=body)
            raise
        self.noted(outcome, body=body)


class KernelPurposeHandler(KernelHandler):
    """The purpose declared for this kernel's session (``%guard purpose NAME``); recorded."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        await declare_purpose(self, binding, self.json_body(), via="kernel")
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

    @web.authenticated
    @authorized
    async def post(self):
        self.binding()
        body = self.json_body()
        clean = {column: {"entity": p["entity"], "rule": p["rule"], "share": float(p.get("share", 0))}
                 for column, p in body["proposal"].items()}
        try:
            res = self.governor.catalog.resolve(body["target"], body.get("kind"))
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        who = self.principal()
        context = self.context(body)
        record = await self.governor.record_fact(
            "classification_proposal", user=who.user, action="classify", target=res.target,
            dataset=res.dataset.name if res.dataset else None, details={"proposal": clean},
            refusal=f"the classification proposal for {res.target} was not recorded", **context,
        )
        self.finish({"audit_seq": record.seq})


class KernelDerivedHandler(KernelHandler):
    """A kernel writes a frame made from governed data (``df.to_csv("mine.csv")``): decided as a
    read of its source datasets under the kernel's purpose (event ``write``), then the file is
    governed as the most sensitive of them (a ``lineage`` record first), before it is written."""

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.json_body()
        gov = self.governor.governance
        unknown = [n for n in body["datasets"] if n not in gov.catalog.datasets]
        if unknown:
            raise web.HTTPError(400, f"no dataset {', '.join(map(repr, unknown))} in the catalog")
        datasets = tuple(gov.catalog.datasets[n] for n in dict.fromkeys(body["datasets"]))
        context = self.context(body)
        req = Request(self.principal(), "read", target=body["target"], datasets=datasets, purpose=binding.purpose,
                      event_type="write", context=context)
        try:
            outcome = await self.governor.decide(req, details={"writer": body["writer"]})
        except Refused as e:
            self.noted(e.outcome, body=body)
            raise
        try:
            path, ds = await self.governor.derive(
                req.who, body["target"], datasets, via="write", source=", ".join(d.name for d in datasets),
                shape=body.get("shape") or "file",
                details={"writer": body["writer"], "datasets": [d.name for d in datasets]}, **context)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        self.finish({**outcome.to_dict(), "governed_as": {"path": path, "dataset": ds.name, "label": ds.label.name}})


class KernelCredentialHandler(KernelHandler):
    """A kernel asks for a data source's connection URL with its secret (``connect("name")``).

    Policy decides the ``credential`` action on the source as on a dataset of its label; the
    decision is recorded durably *before* any answer (event ``credential``, never the secret).
    Permitted: the secret is looked up through the provider chain (nothing cached, so a
    rotated secret is used at once), remembered on the kernel's binding so the server masks
    it in that kernel's outputs, and returned with the rendered URL.
    """

    @web.authenticated
    @authorized
    async def post(self):
        binding = self.binding()
        body = self.json_body()
        name = body["source"]
        gov = self.governor.governance  # one snapshot, even if a reload swaps it meanwhile
        source = gov.catalog.sources.get(name)
        if source is None:
            known = ", ".join(sorted(gov.catalog.sources)) or "none"
            raise web.HTTPError(404, f"no data source {name!r} in the catalog; sources: {known}")
        req = Request(self.principal(), "credential", target=f"source:{source.name}", datasets=(source.as_dataset(),),
                      purpose=binding.purpose, justification=body.get("justification") or None,
                      context=self.context(body), event_type="credential")
        if self.guard.service is not None:  # the service holds the secrets: it decides, records, hands out
            try:
                answer = await self.guard.service.credential(req, {
                    "source": name, "purpose": binding.purpose, "justification": req.justification,
                    "context": dict(req.context)})
            except Refused as e:
                self.noted(e.outcome, body=body, rank=source.label.rank)
                raise
            self.noted(outcome_from_answer(req, answer), body=body, rank=source.label.rank)
            binding.masker.add(tuple(answer.get("secrets") or ()))
            self.finish(answer)
            return
        try:
            outcome, resolved = await self.governor.decide_credential(req, source, self.guard.credentials)
        except Refused as e:
            self.noted(e.outcome, body=body, rank=source.label.rank)
            raise
        self.noted(outcome, body=body, rank=source.label.rank)
        if resolved is None:  # brokered: this server reads it; the kernel gets no secret
            self.finish({**outcome.to_dict(), "source": source.name, "dialect": source.dialect})
            return
        binding.masker.add(resolved.secrets)
        self.finish({**outcome.to_dict(), "source": source.name, "url": resolved.url,
                     "secrets": list(resolved.secrets), "provider": resolved.provider})


class KernelKeysHandler(KernelHandler):
    """Keys the kernel needs to redact: the pseudonym key and the stewards' public key."""

    @web.authenticated
    @authorized
    def get(self):
        self.binding()
        keys = self.guard.redaction_keys()
        if not keys:
            raise web.HTTPError(409, "the guard service keeps the pseudonym key (its kernel_keys setting is False), "
                                "so hash and encrypt column rules apply only to brokered reads; ask your admin to "
                                "mark this dataset access: brokered")
        self.finish(keys)


class KernelReadHandler(KernelHandler):
    """A brokered read served by this server itself (no guard service: a dataset marked
    ``access: brokered`` on one machine). The ticket from the kernel's decision is the grant;
    the kernel token only says the caller is one of this server's kernels."""

    @web.authenticated
    @authorized
    async def post(self):
        self.binding()
        if self.guard.tickets is None:
            raise web.HTTPError(409, "this server does not broker reads: the guard service does "
                                f"({self.guard.service_url}); the kernel asks it directly")
        await stream_read(self, self.json_body(), self.guard.tickets, self.governor.catalog,
                          self.guard.broker_redactor, self.guard.log, self.guard.source_url)


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
        await declare_purpose(self, binding, self.json_body(), via="ui")
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
        name, reason, action = body["dataset"], body["reason"].strip(), body.get("action") or "read"
        who = self.principal()
        gov = self.governor.governance
        ds, target = gov.catalog.datasets.get(name), f"dataset:{name}"
        if ds is None and name in gov.catalog.sources:
            ds, target = gov.catalog.sources[name].as_dataset(), f"source:{name}"
        if ds is None or not self.guard.discoverer(who, gov.policy)(ds):
            raise web.HTTPError(404, f"no dataset {name!r} in the catalog that {who.user} can see")
        steward = str(ds.steward) if ds.steward else None
        record = await self.governor.record_fact(
            "access_request", user=who.user, action=action, target=target, dataset=ds.name, label=ds.label.name,
            decision="requested", justification=reason, notebook=body.get("notebook"),
            kernel_id=body.get("kernel_id"), details={"steward": steward},
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
