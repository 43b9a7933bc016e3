"""The guard service's REST API: thin tornado handlers over the service's Governor.

Every route but ``health`` needs a token; the caller's name and groups come from the Hub (or
the service's token file), never from the request. Refusals answer as the server's routes
do: the governor's status (403 refused, 502 secret lookup failed, 503 cannot record) with the
decision as JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

from tornado import web
from tornado.iostream import StreamClosedError

from .._version import __version__
from ..broker import BrokeredRead, BrokeredSqlRead, BrokerError, ReadSpec
from ..errors import GovernanceRefusal, GuardDenied
from . import protocol

ARROW_STREAM = "application/vnd.apache.arrow.stream"

_TOKEN = re.compile(r"(?:token|bearer)\s+(.+)", re.IGNORECASE)


class ServiceHandler(web.RequestHandler):
    caller = None

    @property
    def service(self):
        return self.settings["guard_service"]

    @property
    def governor(self):
        return self.service.governor

    async def prepare(self):
        if getattr(self, "public", False):
            return
        m = _TOKEN.match(self.request.headers.get("Authorization", ""))
        if not m:
            raise web.HTTPError(401, "the guard service needs a token (Authorization: token ...)")
        try:
            self.caller = await self.service.identity.caller(m.group(1).strip())
        except Exception as e:  # the Hub cannot be asked: nobody is identified, nothing is answered
            self.service.log.error("guard service: cannot identify a caller: %s", e)
            raise web.HTTPError(503, f"the guard service cannot check who is calling ({type(e).__name__}); "
                                "governed requests fail closed until it can") from e
        if self.caller is None:
            raise web.HTTPError(403, "the token is not valid for the guard service")

    def principal(self):
        return self.governor.principal(self.caller.user, self.caller.groups)

    def require_steward(self):
        who = self.principal()
        if not self.service.is_steward(who):
            raise web.HTTPError(403, f"{who.user} is not a data steward; the audit log is for stewards")
        return who

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, f"the body is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    def log_exception(self, typ, value, tb) -> None:
        """A refusal is an answer, not a failure: one line, never a traceback (the record has it all)."""
        if isinstance(value, (GovernanceRefusal, web.HTTPError)):
            self.service.log.info("guard service: %s %s -> %s", self.request.method, self.request.path,
                                  getattr(value, "status", None) or getattr(value, "status_code", ""))
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs) -> None:
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        if isinstance(error, GovernanceRefusal):
            self.set_status(error.status)
            self.finish(json.dumps(error.body))
            return
        message = error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason
        self.finish(json.dumps({"message": message, "status": status_code}))


class HealthHandler(ServiceHandler):
    public = True

    def get(self):
        self.finish({"ok": True, "version": __version__, "datasets": len(self.governor.catalog.datasets)})


class WhoAmIHandler(ServiceHandler):
    def get(self):
        who = self.principal()
        self.finish({"user": who.user, "groups": list(self.caller.groups), "roles": sorted(who.roles),
                     "steward": self.service.is_steward(who), "kind": self.caller.kind})


class DecideHandler(ServiceHandler):
    """Decide and record one governed request of the caller: the answer is durable first."""

    async def post(self):
        body = self.body()
        try:
            req = protocol.request_from_body(self.principal(), body, self.governor.catalog)
            outcome = protocol.adjusted(self.governor.assess(req), body.get("adjust"))
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        outcome = await self.governor.decide(req, outcome=outcome, details=body.get("details") or None)
        self.finish(protocol.answer_body(outcome))


class RecordsHandler(ServiceHandler):
    """POST: record a fact of the caller (a cell execution, a purpose, a lineage record), as the
    caller. GET: query the log (stewards), every user's records."""

    async def post(self):
        try:
            event = protocol.event_from_body(self.body(), user=self.caller.user)
        except (TypeError, ValueError) as e:
            raise web.HTTPError(400, f"not an audit event: {e}") from e
        rec = await self.service.record(event)
        self.set_status(201)
        self.finish(rec.to_dict())

    async def get(self):
        self.require_steward()
        try:
            query = protocol.query_from_params({k: self.get_argument(k) for k in self.request.arguments})
        except ValueError as e:
            raise web.HTTPError(400, f"bad audit query: {e}") from e
        text = await self.service.steward_reader.page(query)
        self.set_header("Content-Type", "application/json")
        self.finish(text)


class VerifyHandler(ServiceHandler):
    async def get(self):
        self.require_steward()
        result = await self.service.steward_reader.verify()
        self.finish(dataclasses.asdict(result))


class KeysHandler(ServiceHandler):
    """The deployment's one pseudonym key and the stewards' public key, for kernels' column rules
    (unless c.GuardService.kernel_keys is False: then they never leave the service)."""

    def get(self):
        if not self.service.kernel_keys:
            raise web.HTTPError(403, "the guard service keeps its pseudonym key (its kernel_keys setting is False): "
                                "datasets with hash or encrypt rules are read brokered, through the service")
        self.finish(self.service.redaction_keys())


class ReadHandler(ServiceHandler):
    """A brokered read (jupyter_guard.broker): the ticket from the caller's decision is the
    grant, so a kernel calls this with the ticket alone (no Hub token of its own needed)."""

    public = True  # authenticated by the ticket, which the service signed for one user and one read

    async def post(self):
        await stream_read(self, self.body(), self.service.tickets, self.governor.catalog, self.service.broker_redactor,
                          self.service.log, self.service.source_url)


async def stream_read(handler: web.RequestHandler, body: dict, tickets, catalog, redactor_factory, log,
                      source_url=None) -> None:
    """Check a brokered read, then stream its chunks with backpressure: the next batch is read and
    redacted (in a thread) only once the last one is on its way. A failure after the first byte
    closes the connection without the trailer, so the kernel returns nothing. ``source_url``:
    a source's SQLAlchemy URL with its secret, for SQL reads."""
    try:
        spec = ReadSpec.from_body(body)
        given = body.get("tickets") if spec.format == "sql" else [body.get("ticket")]
        if not isinstance(given, list) or not given or len(given) > 100:
            raise BrokerError("a brokered read carries the tickets of its decisions")
        grants = [tickets.redeem(str(t or ""), user=None) for t in given]
        grant = grants[0]
        if spec.format == "sql":
            def make():
                return BrokeredSqlRead(catalog, grants, spec, redactor_factory, source_url).check()
        else:
            def make():
                return BrokeredRead(catalog, grant, spec, redactor_factory).check()
        read = await asyncio.get_running_loop().run_in_executor(None, make)
    except GuardDenied as e:  # BrokerError, and SQL whose tables cannot be known
        raise web.HTTPError(400, str(e)) from e
    except PermissionError as e:  # the broker's account cannot read it either: the admin's layout
        raise web.HTTPError(500, f"the guard cannot read {e.filename}: {e.strerror}; tell your admin") from e
    handler.set_header("Content-Type", ARROW_STREAM)
    chunks = read.chunks()
    loop = asyncio.get_running_loop()
    started = False
    try:
        while True:
            chunk = await loop.run_in_executor(None, next, chunks, None)
            if chunk is None:
                break
            handler.write(chunk)
            await handler.flush()
            if not started:
                started = True
                log.info("brokered read of %s for %s: streaming from %d file(s)", grant.dataset, grant.user,
                         len(read.files))
    except StreamClosedError:
        log.info("brokered read of %s: the reader went away after %d rows", grant.dataset, read.rows)
        return
    except Exception as e:  # noqa: BLE001 - mid-stream: no status can be sent; an incomplete stream says it
        log.error("brokered read of %s failed after %d rows: %s: %s", grant.dataset, read.rows, type(e).__name__, e)
        handler.request.connection.close()
        return
    log.info("brokered read of %s for %s: %d rows, %d bytes", grant.dataset, grant.user, read.rows, read.bytes_sent)
    handler.finish()


class CopiesHandler(ServiceHandler):
    """Files made from governed data (copies, derived writes): path -> dataset, for servers to govern."""

    def get(self):
        self.finish({path: {"dataset": ds, "from": src} for path, (ds, src) in self.governor.copies.items()})


class CredentialHandler(ServiceHandler):
    """A data source's connection URL with its secret, from the service's providers: decided
    (action ``credential``) and recorded before the secret is looked up and returned."""

    async def post(self):
        body = self.body()
        name = body.get("source") or ""
        gov = self.governor.governance
        source = gov.catalog.sources.get(name)
        if source is None:
            raise web.HTTPError(404, f"no data source {name!r} in the catalog; sources: "
                                f"{', '.join(sorted(gov.catalog.sources)) or 'none'}")
        req = protocol.request_from_body(self.principal(), {
            **body, "action": "credential", "target": f"source:{name}", "datasets": [f"source:{name}"],
            "event_type": "credential"}, gov.catalog)
        outcome, resolved = await self.governor.decide_credential(req, source, self.service.credentials)
        if resolved is None:  # brokered: the secret stays here; the kernel reads through api/read
            self.finish({**protocol.answer_body(outcome), "source": source.name, "dialect": source.dialect})
            return
        self.finish({**protocol.answer_body(outcome), "source": source.name, "url": resolved.url,
                     "secrets": list(resolved.secrets), "provider": resolved.provider})


def handlers(prefix: str) -> list:
    api = prefix.rstrip("/") + "/" + protocol.API
    return [
        (api + "health", HealthHandler),
        (api + "whoami", WhoAmIHandler),
        (api + "decide", DecideHandler),
        (api + "records", RecordsHandler),
        (api + "verify", VerifyHandler),
        (api + "keys", KeysHandler),
        (api + "copies", CopiesHandler),
        (api + "credentials", CredentialHandler),
        (api + "read", ReadHandler),
    ]
