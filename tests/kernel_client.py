"""Run cells in a real kernel through the server's websocket, as JupyterLab does.

Both websocket protocols: the legacy JSON one and ``v1.kernel.websocket.jupyter.org``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

V1 = "v1.kernel.websocket.jupyter.org"


def auth(token: str) -> dict:
    return {"Authorization": f"token {token}"}


@dataclass
class CellResult:
    reply: dict
    outputs: list[dict] = field(default_factory=list)
    msg_id: str = ""

    @property
    def text(self) -> str:
        """Everything the cell showed, as text (streams, results, tracebacks)."""
        parts = []
        for out in self.outputs:
            c = out["content"]
            if out["msg_type"] == "stream":
                parts.append(c["text"])
            elif out["msg_type"] in ("execute_result", "display_data"):
                parts.append(c["data"].get("text/plain", ""))
            elif out["msg_type"] == "error":
                parts.append(f"{c['ename']}: {c['evalue']}\n" + "\n".join(c["traceback"]))
        return "".join(parts)

    @property
    def error(self) -> dict | None:
        return next((o["content"] for o in self.outputs if o["msg_type"] == "error"), None)


async def start_session(jp_fetch, path: str = "analysis.ipynb", token: str = "tok-rita") -> str:
    body = {"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body), headers=auth(token))
    return json.loads(r.body)["kernel"]["id"]


class KernelChannel:
    def __init__(self, ws, protocol: str | None):
        self.ws = ws
        self.protocol = protocol
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(cls, jp_ws_fetch, kernel_id: str, token: str = "tok-rita", protocol: str | None = None):
        kwargs = {"headers": auth(token)}
        if protocol:
            kwargs["subprotocols"] = [protocol]
        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels", **kwargs)
        return cls(ws, protocol)

    def close(self) -> None:
        self.ws.close()

    async def execute(self, code: str, cell_id: str | None = None, timeout: float = 120) -> CellResult:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "test",
            "version": "5.3",
            "date": datetime.now(timezone.utc).isoformat(),
        }
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        metadata = {"cellId": cell_id} if cell_id else {}
        if self.protocol == V1:
            pack = lambda o: json.dumps(o).encode()  # noqa: E731
            msg = {"header": header, "parent_header": {}, "metadata": metadata, "content": content}
            await self.ws.write_message(serialize_msg_to_ws_v1(msg, "shell", pack), binary=True)
        else:
            msg = {"header": header, "parent_header": {}, "metadata": metadata, "content": content,
                   "channel": "shell", "buffers": []}
            await self.ws.write_message(json.dumps(msg))
        result = CellResult(reply={}, msg_id=msg_id)
        idle = False
        async with asyncio.timeout(timeout):
            while not (result.reply and idle):
                raw = await self.ws.read_message()
                if raw is None:
                    raise ConnectionError("kernel websocket closed")
                channel, m = self._decode(raw)
                if m["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = m["header"]["msg_type"]
                if channel == "shell" and kind == "execute_reply":
                    result.reply = m
                elif channel == "iopub" and kind == "status" and m["content"]["execution_state"] == "idle":
                    idle = True
                elif channel == "iopub" and kind in ("stream", "execute_result", "display_data", "error"):
                    result.outputs.append({"msg_type": kind, "content": m["content"]})
        return result

    def _decode(self, raw):
        if self.protocol == V1:
            channel, parts = deserialize_msg_from_ws_v1(raw)
            keys = ("header", "parent_header", "metadata", "content")
            return channel, {k: json.loads(p) for k, p in zip(keys, parts)}
        m = json.loads(raw)
        return m.get("channel"), m


@contextlib.asynccontextmanager
async def running_kernel(jp_fetch, jp_ws_fetch, path: str = "analysis.ipynb", token: str = "tok-rita",
                         protocol: str | None = None):
    """A session's kernel and a websocket channel to it; both closed afterwards."""
    kernel_id = await start_session(jp_fetch, path, token=token)
    channel = await KernelChannel.open(jp_ws_fetch, kernel_id, token=token, protocol=protocol)
    try:
        yield kernel_id, channel
    finally:
        channel.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE", headers=auth(token))
