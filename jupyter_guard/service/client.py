"""A single-user server as the guard service's client (``c.GuardApp.service_url``).

``ServiceGovernor`` is the server's Governor with the decisions and records made by the
service: it previews with the server's own catalog copy (listings, badges, export reviews),
but every decision that counts, every audit append, every query and every credential goes to
the service with the server's Hub token, and the service answers from its catalog, with the
caller's identity and groups from the Hub. The server keeps no audit key, no store, no
pseudonym key file and no secrets of its own. If the service cannot be reached, governed
requests fail closed (:class:`~jupyter_guard.errors.Unrecorded`, 503) saying so.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

from tornado import web

from ..audit import AuditQuery
from ..audit.chain import VerifyResult
from ..errors import AuditError, Refused, Unrecorded
from ..governor import Governor
from . import protocol


class ServiceUnavailable(AuditError):
    """The guard service did not answer (down, unreachable, timed out)."""


class ServiceError(web.HTTPError):
    """The service answered with an error that is not a governance refusal (a bad request, a
    token it does not accept, a caller who is not a steward): passed on with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(status, "%s", message)
        self.message = message


class ServiceClient:
    """HTTP calls to the service's API, async (the server's routes) and blocking (start-up)."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0):
        if not token:
            raise ValueError("a guard service client needs a token (JUPYTERHUB_API_TOKEN under JupyterHub, "
                             "or c.GuardApp.service_token)")
        self.url = url.rstrip("/") + "/"
        self.api = self.url + protocol.API
        self.timeout = timeout
        self._headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}

    def describe(self) -> str:
        return f"the guard service at {self.url}"

    def _url(self, path: str, params: dict | None) -> str:
        return self.api + path + ("?" + urlencode(params) if params else "")

    async def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None):
        """(status, decoded JSON or text); ServiceUnavailable when nothing answered."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            resp = await AsyncHTTPClient().fetch(
                self._url(path, params), method=method, headers=self._headers,
                body=json.dumps(body) if body is not None else None, request_timeout=self.timeout,
                connect_timeout=self.timeout, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise self._unavailable(e) from e
        if resp.code == 599:  # tornado's "no answer": refused connection, timeout, DNS
            raise self._unavailable(resp.error)
        return resp.code, _decode(resp.body)

    def call_blocking(self, method: str, path: str, body: dict | None = None, params: dict | None = None):
        req = urllib.request.Request(self._url(path, params), method=method, headers=self._headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the admin's URL
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read())
        except (OSError, urllib.error.URLError) as e:
            raise self._unavailable(e) from e

    def _unavailable(self, error) -> ServiceUnavailable:
        return ServiceUnavailable(f"the guard service at {self.url} does not answer ({error})")


def _decode(raw: bytes):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode("utf-8", "replace")


def _message(data, status: int) -> str:
    return (data.get("message") if isinstance(data, dict) else None) or f"the guard service answered {status}"


def _ok(status: int, data, what: str):
    """The data of a 2xx answer; AuditError (fail closed) for anything else."""
    if 200 <= status < 300:
        return data
    raise AuditError(f"{what}: {_message(data, status)}")


class ServiceAuditLog:
    """The audit log as a client sees it: appends and queries go to the service."""

    def __init__(self, client: ServiceClient):
        self.client = client
        self.store = self  # describe() is what the server's status and logs show

    def describe(self) -> str:
        return self.client.describe()

    def reader_spec(self):
        return None  # stewards' queries run on the service

    def append(self, event):
        status, data = self.client.call_blocking("POST", "records", protocol.event_body(event))
        return protocol.record_from_dict(_ok(status, data, "the guard service did not record it"))

    async def append_async(self, event):
        status, data = await self.client.call("POST", "records", protocol.event_body(event))
        return protocol.record_from_dict(_ok(status, data, "the guard service did not record it"))

    def query(self, q: AuditQuery):
        status, data = self.client.call_blocking("GET", "records", params=protocol.query_params(q))
        if status == 403:
            raise ServiceError(403, _message(data, status))
        page = _ok(status, data, "the guard service did not answer the query")
        return [protocol.record_from_dict(r) for r in page["records"]]

    def verify(self) -> VerifyResult:
        status, data = self.client.call_blocking("GET", "verify")
        if status == 403:
            raise ServiceError(403, _message(data, status))
        return VerifyResult(**_ok(status, data, "the guard service did not verify"))

    def check_key(self) -> None:
        """The key is the service's: nothing to check here."""

    def close(self) -> None:
        """Nothing of the log is held here."""


class ServiceGovernor(Governor):
    """The server's Governor when a guard service decides and records (see the module)."""

    def __init__(self, governance, client: ServiceClient, extra_roles=None):
        super().__init__(governance, ServiceAuditLog(client), extra_roles=extra_roles)
        self.client = client

    async def decide(self, req, *, outcome=None, details=None):
        local = outcome or self.assess(req)  # a target the catalog cannot resolve: ValueError, as before
        body = self._body(req, outcome, local, details)
        try:
            status, answer = await self.client.call("POST", "decide", body)
        except ServiceUnavailable as e:
            raise self._unrecorded(local, e) from e
        return self._settle(req, local, status, answer)

    def decide_blocking(self, req, *, details=None):
        local = self.assess(req)
        try:
            status, answer = self.client.call_blocking("POST", "decide", self._body(req, None, local, details))
        except ServiceUnavailable as e:
            raise self._unrecorded(local, e) from e
        return self._settle(req, local, status, answer)

    @staticmethod
    def _body(req, outcome, local, details) -> dict:
        body = protocol.request_body(req, outcome, details)
        if local.resolution is not None and req.kind in (None, "path"):
            body["target"] = local.resolution.target  # normalised: the service resolves it the same way
        return body

    def _settle(self, req, local, status: int, answer):
        """The service's answer as the governor's: an Outcome, or the refusal it stands for."""
        if isinstance(answer, dict) and "effect" in answer:
            answer = dict(answer)
            record = answer.pop("record", None)
            outcome = protocol.outcome_from_answer(req, {**answer, "record": record}, local.resolution)
            if outcome.record is not None:
                self._notify(outcome.record)
            if status == 200 and outcome.permitted:
                return outcome
            if status in (403, 502):
                raise Refused(_message(answer, status), body=answer, outcome=outcome, status=status)
        if status == 400:
            raise ValueError(_message(answer, status))
        if status == 503 and isinstance(answer, dict) and "effect" in answer:
            raise Unrecorded(_message(answer, status), body=answer)
        raise self._unrecorded(local, AuditError(f"the guard service refused to decide: {_message(answer, status)}"))

    def restore_copies(self) -> int:
        status, data = self.client.call_blocking("GET", "copies")
        copies = _ok(status, data, "the guard service did not list the derived files")
        self.copies = {path: (c["dataset"], c.get("from") or "") for path, c in copies.items()}
        self.swap(self.loaded)
        return len(self.copies)

    async def credential(self, req, body: dict) -> dict:
        """A data source's URL and secret, decided, recorded and looked up by the service (``req``:
        the server's own Request for it, to answer a refusal as the governor does)."""
        try:
            status, answer = await self.client.call("POST", "credentials", body)
        except ServiceUnavailable as e:
            raise self._unrecorded(self.assess(req), e) from e
        if status == 200:
            answer.pop("record", None)
            return answer
        if isinstance(answer, dict) and "effect" in answer:
            self._settle(req, self.assess(req), status, answer)  # raises the refusal
        raise ServiceError(status, _message(answer, status))

    def redaction_keys(self) -> dict:
        """The deployment's keys for kernels' column rules; {} when the service keeps them
        (c.GuardService.kernel_keys = False: hash rules then apply only in brokered reads)."""
        status, data = self.client.call_blocking("GET", "keys")
        if status == 403:
            return {}
        return _ok(status, data, "the guard service did not hand out the redaction keys")

