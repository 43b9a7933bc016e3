"""The kernel's small HTTP client for the server's kernel API (stdlib only, fail closed).

Where to call and with which token come from the kernel's environment, put there by the
server when it started the kernel (``JUPYTER_GUARD_URL``, ``JUPYTER_GUARD_TOKEN``); they are
read on every call, so a restarted server or a changed variable takes effect at once. One
HTTP/1.1 connection is kept open and reused (a decision is then one round trip on loopback);
a connection the server closed while idle is reopened once.

Every failure to get a decision — variables missing, server unreachable or too slow, HTTP
5xx, a malformed answer — raises :class:`jupyter_guard.GuardDenied` with the reason: the
caller refuses the governed read (fail closed).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from urllib.parse import urlsplit

from ..errors import GuardDenied

ENV_URL, ENV_TOKEN, ENV_KERNEL = "JUPYTER_GUARD_URL", "JUPYTER_GUARD_TOKEN", "JUPYTER_GUARD_KERNEL_ID"
ENV_TIMEOUT = "JUPYTER_GUARD_TIMEOUT"
TOKEN_HEADER = "X-Jupyter-Guard-Kernel"
DEFAULT_TIMEOUT = 10.0  # seconds for connect and for each read; a decision takes milliseconds

_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)


class GuardClient:
    """Calls ``{JUPYTER_GUARD_URL}/{route}`` with the kernel token. Thread-safe (one lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._conn_key: tuple | None = None

    # -- public --------------------------------------------------------------------------

    def decide(self, body: dict) -> dict:
        """The server's decision for one read. Raises GuardDenied if none can be had.

        A refused decision (403 with the decision) is returned (the caller raises with its
        message); a 503 — the audit log cannot record — raises here, with the server's message.
        """
        status, reply = self.request("POST", "decide", body)
        if status in (200, 403) and _is_decision(reply):
            return reply
        raise GuardDenied(self._failure(status, reply, what="decide on this read"), decision=reply)

    def credential(self, source: str, *, msg_id: str | None = None, cell_id: str | None = None,
                   justification: str | None = None) -> dict:
        """The server's answer on handing this kernel the credential of data source ``source``.

        The server decides under the purpose it holds for this kernel (route ``purpose``).

        A refusal (403 with the decision) is returned: the caller raises with its message.
        An unknown source (404), a secret that could not be looked up (502) or an audit log
        that cannot record (503) raise GuardDenied here with the server's message, which
        names the source and the provider and never a secret.
        """
        body = {"source": source, "msg_id": msg_id or "", "cell_id": cell_id}
        if justification:
            body["justification"] = justification
        status, reply = self.request("POST", "credential", body)
        if status in (200, 403) and _is_decision(reply):
            return reply
        message = reply.get("message") if isinstance(reply, dict) else None
        if status in (404, 502, 503) and message:
            raise GuardDenied(str(message), decision=reply if isinstance(reply, dict) else None)
        raise GuardDenied(self._failure(status, reply, what=f"hand out the credential of source {source!r}"),
                          decision=reply if isinstance(reply, dict) else None)

    def purpose(self, name: str | None = None, *, set_it: bool = False) -> dict:
        """The purpose the server holds for this kernel (set it with ``set_it``); the server's is the
        one decisions use, whether ``%guard purpose`` or the notebook toolbar set it."""
        status, reply = self.request("POST", "purpose", {"purpose": name}) if set_it else self.request("GET", "purpose")
        if status == 200 and isinstance(reply, dict):
            return reply
        raise GuardDenied(self._failure(status, reply, what="set or read the purpose"))

    def derived(self, body: dict) -> dict:
        """The server's answer on writing a frame made from governed data to a file (route
        ``derived``): the decision (a refusal is returned for the caller to raise), else GuardDenied."""
        status, reply = self.request("POST", "derived", body)
        if status in (200, 403) and _is_decision(reply):
            return reply
        message = reply.get("message") if isinstance(reply, dict) else None
        if status == 400 and message:
            raise GuardDenied(str(message))
        raise GuardDenied(self._failure(status, reply, what=f"govern the file {body.get('target')!r} this frame is "
                                                           "written to (so it is not written)"))

    def propose(self, body: dict) -> None:
        """Send a column-classification proposal for ungoverned data (best effort)."""
        self.request("POST", "classification", body)

    def keys(self) -> dict:
        status, reply = self.request("GET", "keys")
        if status == 200 and isinstance(reply, dict) and reply.get("pseudonym_key"):
            return reply
        if status == 409 and isinstance(reply, dict) and reply.get("message"):
            raise GuardDenied(str(reply["message"]))  # the keys stay with the guard service
        raise GuardDenied(self._failure(status, reply, what="hand out the redaction keys"))

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- transport -----------------------------------------------------------------------

    def request(self, method: str, route: str, body: dict | None = None) -> tuple[int, object]:
        """(HTTP status, decoded JSON or None). Transport failures raise GuardDenied."""
        url, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
        if not url or not token:
            raise GuardDenied(
                "jupyter_guard cannot check this read: the kernel was not started by a Jupyter server "
                f"with jupyter_guard ({ENV_URL} / {ENV_TOKEN} are not set), so governed data is refused. "
                "Open the notebook through JupyterLab, or ask your admin."
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GuardDenied(f"jupyter_guard cannot check this read: {ENV_URL}={url!r} is not an http(s) URL.")
        path = parts.path.rstrip("/") + "/" + route
        payload = None if body is None else json.dumps(body).encode()
        headers = {TOKEN_HEADER: token, "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        key = (parts.scheme, parts.hostname, parts.port, self._timeout())
        with self._lock:
            for attempt in (0, 1):
                reused = self._conn is not None and self._conn_key == key
                try:
                    conn = self._connection(key)
                    conn.request(method, path, body=payload, headers=headers)
                    response = conn.getresponse()
                    raw = response.read()
                    status = response.status
                    if response.will_close:
                        self._drop()
                    break
                except _STALE as e:
                    self._drop()
                    if reused and attempt == 0:
                        continue  # the server closed an idle keep-alive connection: open a new one
                    raise GuardDenied(_unreachable(url, e)) from None
                except (OSError, http.client.HTTPException) as e:  # refused, timeout, DNS, TLS
                    self._drop()
                    raise GuardDenied(_unreachable(url, e)) from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def _connection(self, key: tuple) -> http.client.HTTPConnection:
        if self._conn is None or self._conn_key != key:
            self._drop()
            scheme, host, port, timeout = key
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._conn = cls(host, port, timeout=timeout)
            self._conn_key = key
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None
        self._conn_key = None

    @staticmethod
    def _timeout() -> float:
        try:
            return max(0.1, float(os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT))
        except ValueError:
            return DEFAULT_TIMEOUT

    @staticmethod
    def _failure(status: int, reply: object, *, what: str) -> str:
        message = reply.get("message") if isinstance(reply, dict) else None
        if status == 403:
            return (
                "jupyter_guard refused this kernel's token (HTTP 403): the kernel is not known to the "
                "server it reports to (was the server restarted?). Restart the kernel; governed data is "
                "refused until then."
            )
        if message and (status == 503 or status < 400):
            return str(message)  # the server's own words: who/what/why/who-to-ask, or audit unavailable
        return (
            f"the jupyter_guard server could not {what} (HTTP {status}{': ' + str(message) if message else ''}); "
            "governed data is refused until it can. Tell your JupyterHub admin if this persists."
        )


def _is_decision(reply: object) -> bool:
    """A decision answer (permitted or a refusal), as opposed to an error message."""
    return isinstance(reply, dict) and "effect" in reply and "permitted" in reply


def _unreachable(url: str, error: BaseException) -> str:
    reason = type(error).__name__ + (f": {error}" if str(error) else "")
    return (
        f"jupyter_guard cannot reach its server at {url} ({reason}), so this read cannot be checked "
        "and recorded; governed data is refused until the server answers. If JupyterLab itself "
        "still works, restart the kernel; otherwise tell your admin."
    )
