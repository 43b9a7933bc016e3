"""The kernel-channel observer: one audit record per cell execution that touched governed data,
and the secrets handed to a kernel masked in everything it sends to the browser.

The server sees every ``execute_request`` a browser client sends (code, cell id) and every
``execute_reply`` the kernel sends back, in both websocket protocols. Decisions the kernel
asked for during the execution are keyed by the request's ``msg_id``. When the reply
arrives, the tracker writes one ``cell_execution`` record if the cell had governed decisions,
or if the kernel is unguarded (the guard is not loaded, was unloaded, or the kernel is not
IPython) — then the server cannot know what the cell touched, so it records every execution.

Whether the guard was active comes from the reply's metadata, which the kernel extension
stamps (``metadata["jupyter_guard"]``) along with what it redacted (counts, never values).
That stamp is a sensor: user code could forge it; the decisions themselves are the
server's own records.

The same connection class masks secrets: every secret value the server handed to a kernel
(data-source credentials, see ``KernelCredentialHandler``) is replaced by ``***`` in every
message of that kernel going out to the browser (streams, results, display data, errors,
replies), so it never reaches the page, the saved notebook or an export made from it. A
kernel that was handed no secret costs one dictionary lookup per message. The values and
their spellings are :mod:`jupyter_guard.masking`'s, shared with the kernel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import GovernanceRefusal
from ..policy import EFFECT_ORDER

log = logging.getLogger(__name__)

V1 = "v1.kernel.websocket.jupyter.org"
#: kernel messages that carry outputs to the browser (and into the saved notebook)
OUTPUT_MESSAGES = frozenset({"stream", "display_data", "update_display_data", "execute_result", "error"})
PENDING_TTL = 24 * 3600.0  # seconds an unanswered execute_request is remembered


@dataclass
class Execution:
    kernel_id: str
    msg_id: str
    code: str
    cell_id: str | None
    started: float = field(default_factory=time.monotonic)
    decisions: list[dict] = field(default_factory=list)


class CellTracker:
    """Pending executions by msg_id, and the decisions made during each."""

    def __init__(self, app: Any):
        self.app = app
        self.pending: dict[str, Execution] = {}
        self.early: dict[str, list[dict]] = {}  # decisions that arrived before their request was seen
        #: the live output filter's detection cache (its own detector: it runs on the event loop)
        self.output_scans = app.output_scans
        self.filtered: Counter = Counter()  # entities replaced by the output filter (counts only)

    # -- the output filter ---------------------------------------------------------------------

    def filters(self, binding: Any) -> bool:
        """Whether this kernel's outputs pass the PII filter (c.GuardApp.output_filter)."""
        mode = self.app.output_filter
        if mode == "off":
            return False
        if mode == "all":
            return True
        # governed: the kernel read governed data under a redact effect, or runs without its guard
        return binding is None or binding.filter_outputs or not binding.guardable

    def filter_output(self, session: Any, msg: Any) -> Any:
        """An output message (stream, display, result, error) with PII replaced; others as they are."""
        if isinstance(msg, dict):
            kind = (msg.get("header") or {}).get("msg_type")
            if kind in OUTPUT_MESSAGES and isinstance(msg.get("content"), dict):
                msg["content"] = self._filtered(kind, msg["content"])
            return msg
        parts = list(msg)
        if len(parts) < 4:
            return msg
        kind = session.unpack(_raw(parts[0])).get("msg_type")
        if kind not in OUTPUT_MESSAGES:
            return msg
        content = session.unpack(_raw(parts[3]))
        parts[3] = json.dumps(self._filtered(kind, content), ensure_ascii=False).encode("utf-8")
        return parts

    def _filtered(self, kind: str, content: dict) -> dict:
        from ..export import redact_output

        output_type = "display_data" if kind == "update_display_data" else kind
        out, counts = redact_output({**content, "output_type": output_type}, self.output_scans,
                                    max_output_bytes=self.app.export_max_output_bytes)
        out = dict(out)
        out.pop("output_type", None)
        if kind == "update_display_data" or "transient" in content:
            out.setdefault("transient", content.get("transient", {}))
        if counts:
            self.filtered.update(counts)
        return out

    def started(self, kernel_id: str, msg_id: str, code: str, cell_id: str | None) -> None:
        self._expire()
        ex = Execution(kernel_id, msg_id, code, cell_id)
        ex.decisions.extend(self.early.pop(msg_id, ()))
        self.pending[msg_id] = ex

    def decided(self, msg_id: str | None, summary: dict) -> None:
        if not msg_id:
            return
        ex = self.pending.get(msg_id)
        if ex is not None:
            ex.decisions.append(summary)
        else:  # a client that is not a websocket (nbclient, a console) or a race with the request
            self.early.setdefault(msg_id, []).append(summary)

    def finished(self, msg_id: str, metadata: dict, content: dict) -> None:
        ex = self.pending.pop(msg_id, None)
        if ex is None:
            return
        report = metadata.get("jupyter_guard") if isinstance(metadata, dict) else None
        guarded = isinstance(report, dict) and report.get("guarded") is True
        binding = self.app.kernel_bindings.by_kernel(ex.kernel_id)
        if not guarded and binding is not None:
            binding.filter_outputs = True  # it ran without its guard: what it prints is filtered from now on
        mentions = self.app.governor.catalog.mentions(ex.code)
        if guarded and not ex.decisions and not mentions:
            return  # a guarded cell that neither asked about nor names governed data: nothing to record
        asyncio.ensure_future(self._record(ex, guarded, report if guarded else None, content, mentions))

    async def _record(self, ex: Execution, guarded: bool, report: dict | None, content: dict,
                      mentions: list[str]) -> None:
        binding = self.app.kernel_bindings.by_kernel(ex.kernel_id)
        notebook = await self.notebook(ex.kernel_id, binding)
        worst = max(ex.decisions, key=lambda d: (EFFECT_ORDER.get(d.get("effect"), 0), d.get("rank", -1)), default=None)
        labelled = [d for d in ex.decisions if d.get("label")]
        top = max(labelled, key=lambda d: d.get("rank", -1), default=None)
        if top is None and mentions:  # named, not decided: the record is filed under the most sensitive
            catalog = self.app.governor.catalog
            named = [catalog.datasets.get(n) or (catalog.sources[n].as_dataset() if n in catalog.sources else None)
                     for n in mentions]
            best = max((d for d in named if d), key=lambda d: d.label.rank, default=None)
            top = {"dataset": best.name, "label": best.label.name} if best else None
        principal = self.app.kernel_principal(binding) if binding else None
        # how the server knows this cell touched governed data: the kernel's hooks asked, or only its
        # code names governed data (a read around the hooks: subprocess, duckdb, the guard switched off)
        seen = "hooks" if ex.decisions else ("code mentions governed data" if guarded else "guard off")
        details = {
            "seen": seen,
            "mentions": mentions,
            "guarded": guarded,
            "kernel_language_guardable": bool(binding and binding.guardable),
            "execution_count": content.get("execution_count"),
            "status": content.get("status"),
            "code_sha256": hashlib.sha256(ex.code.encode()).hexdigest(),
            "code": ex.code,  # masked by the governor before it is stored
            "datasets": [
                {k: d.get(k) for k in ("dataset", "label", "effect", "action", "target", "audit_seq")}
                for d in ex.decisions
            ],
        }
        if report:
            details["redaction"] = {k: report[k] for k in ("reads",) if k in report}
            details["guard_state"] = {k: v for k, v in report.items() if k != "reads"}
        flagged = guarded and not ex.decisions and bool(mentions)
        if flagged:
            details["flag"] = "the code names governed data, but the kernel's guard asked for no decision"
        try:
            await self.app.governor.record_fact(
                "cell_execution",
                user=principal.user if principal else None,
                action="execute",
                dataset=top.get("dataset") if top else None,
                label=top.get("label") if top else None,
                decision=(worst or {}).get("effect") if ex.decisions else ("unguarded" if not guarded else "unchecked"),
                reasons=() if ex.decisions else (
                    ("the kernel's guard was not active for this execution",) if not guarded else
                    (f"the code names {', '.join(mentions)} but no read was decided: "
                     "it may have read governed data around the guard",)),
                purpose=binding.purpose if binding else None,
                kernel_id=ex.kernel_id,
                notebook=notebook,
                cell_id=ex.cell_id,
                msg_id=ex.msg_id,
                details=details,
                known_secrets=binding.masker.secrets if binding else (),
                refusal=f"cell execution {ex.msg_id} was not recorded",
            )
        except GovernanceRefusal:  # the store is down: the reads themselves already failed closed
            log.exception("jupyter_guard: could not record cell execution %s", ex.msg_id)

    async def notebook(self, kernel_id: str, binding: Any) -> str | None:
        """The kernel's notebook as its session names it now (after a rename), else as bound."""
        try:
            sm = self.app.serverapp.session_manager
            sessions = await sm.list_sessions()
        except Exception:
            sessions = []
        for s in sessions:
            if (s.get("kernel") or {}).get("id") == kernel_id:
                return s.get("path")
        return binding.notebook if binding else None

    def _expire(self) -> None:
        now = time.monotonic()
        for msg_id in [m for m, ex in self.pending.items() if now - ex.started > PENDING_TTL]:
            del self.pending[msg_id]
        if len(self.early) > 10_000:
            self.early.clear()


def _raw(part: Any) -> bytes:
    return part if isinstance(part, bytes) else bytes(getattr(part, "bytes", part))


def _mask_message(masker: Any, msg: Any) -> Any:
    if isinstance(msg, dict):
        for key in ("content", "metadata"):
            if key in msg:
                msg[key] = masker.obj(msg[key])
        return msg
    parts = list(msg)
    for i in (2, 3):  # metadata, content
        if i < len(parts):
            parts[i] = masker.frame(parts[i])
    return parts


def observing_connection_class(base: type, tracker: CellTracker) -> type:
    """A subclass of the configured kernel websocket connection that reports executions
    and masks the secrets the server handed to the kernel in what goes out to the client."""
    if not hasattr(base, "_on_zmq_reply"):
        log.warning(
            "jupyter_guard: kernel websocket class %s has no _on_zmq_reply; secrets handed to kernels "
            "are NOT masked in their outputs", base.__name__,
        )

    class GuardObservedConnection(base):  # type: ignore[misc, valid-type]
        def _on_zmq_reply(self, stream: Any, msg_or_parts: Any) -> None:
            # the one place both protocols pass on their way to the websocket (buffered replays too):
            # legacy: a deserialized message dict; v1: [header, parent, metadata, content, *buffers]
            binding = tracker.app.kernel_bindings.by_kernel(self.kernel_id)
            if binding is not None and binding.masker.active:
                try:
                    msg_or_parts = _mask_message(binding.masker, msg_or_parts)
                except Exception:  # never pass a message on unmasked: drop it instead
                    log.exception("jupyter_guard: could not mask secrets in a kernel message; dropped")
                    return None
            if tracker.filters(binding):
                try:
                    msg_or_parts = tracker.filter_output(self.session, msg_or_parts)
                except Exception:  # never pass an output on unfiltered: drop it instead
                    log.exception("jupyter_guard: could not filter a kernel output; dropped")
                    return None
            return super()._on_zmq_reply(stream, msg_or_parts)

        def handle_incoming_message(self, incoming_msg: Any) -> None:
            try:
                self._guard_observe_request(incoming_msg)
            except Exception:  # observing must never break the kernel channel
                log.exception("jupyter_guard: could not read an incoming kernel message")
            return super().handle_incoming_message(incoming_msg)

        def handle_outgoing_message(self, stream: Any, outgoing_msg: Any) -> None:
            try:
                self._guard_observe_reply(stream, outgoing_msg)
            except Exception:
                log.exception("jupyter_guard: could not read an outgoing kernel message")
            return super().handle_outgoing_message(stream, outgoing_msg)

        def _guard_observe_request(self, raw: Any) -> None:
            if self.subprotocol == V1:
                from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

                channel, parts = deserialize_msg_from_ws_v1(raw)
                if channel != "shell":
                    return
                header = self.session.unpack(parts[0])
                if header.get("msg_type") != "execute_request":
                    return
                content = self.session.unpack(parts[3])
                metadata = self.session.unpack(parts[2])
            else:
                if isinstance(raw, bytes):
                    from jupyter_server.services.kernels.connection.base import deserialize_binary_message

                    msg = deserialize_binary_message(raw)
                else:
                    msg = json.loads(raw)
                if msg.get("channel", "shell") != "shell" or msg.get("header", {}).get("msg_type") != "execute_request":
                    return
                header, content, metadata = msg["header"], msg.get("content") or {}, msg.get("metadata") or {}
            tracker.started(self.kernel_id, header["msg_id"], str(content.get("code", "")), metadata.get("cellId"))

        def _guard_observe_reply(self, stream: Any, msg_list: Any) -> None:
            channel = stream if isinstance(stream, str) else getattr(stream, "channel", None)
            if channel != "shell":
                return
            _, parts = self.session.feed_identities(msg_list)
            # parts: signature, header, parent_header, metadata, content, buffers...
            header = self.session.unpack(parts[1])
            if header.get("msg_type") != "execute_reply":
                return
            parent = self.session.unpack(parts[2])
            tracker.finished(parent.get("msg_id"), self.session.unpack(parts[3]), self.session.unpack(parts[4]))

    GuardObservedConnection.__name__ = f"GuardObserved{base.__name__}"
    return GuardObservedConnection
