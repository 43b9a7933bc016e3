"""The audit log for stewards: query, verify, export. Reads run off the event loop."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ...audit import AuditQuery
from ...audit.export import MEDIA_TYPES
from .base import GuardHandler

#: records per query while an export streams (each chunk is flushed before the next query)
EXPORT_PAGE = 5000
#: the filters of GET audit and GET audit/export (besides since/until)
AUDIT_FILTERS = ("user", "dataset", "label", "decision", "notebook", "event_type", "action")


def audit_filters(args: dict) -> dict:
    """The filters of GET audit and GET audit/export from the checked query (empty = not given)."""
    filters = {name: args.get(name) or None for name in AUDIT_FILTERS}
    try:
        filters.update(since=_time(args.get("since")), until=_time(args.get("until")))
    except ValueError as e:
        raise web.HTTPError(400, f"bad audit query: {e}") from e
    return filters


def _time(value: str | None) -> str | None:
    if not value:
        return None
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # raises ValueError on nonsense
    return value


class AuditHandler(GuardHandler):
    """Query the audit log (stewards only), newest first by default, paged by `after` seq."""

    @web.authenticated
    @authorized
    async def get(self):
        self.require_steward()
        args = self.query_args()
        limit = args["limit"]
        try:
            query = AuditQuery(**audit_filters(args), after_seq=args["after"], limit=limit,
                               descending=args["order"] != "asc")
        except ValueError as e:
            raise web.HTTPError(400, f"bad audit query: {e}") from e
        # decoded and encoded in the stewards' reader, never on the event loop
        text = await self.guard.steward_reader.page(query)
        self.set_header("Content-Type", "application/json")
        self.finish(text)


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
        args = self.query_args()
        fmt = args["format"]
        media_type = f"{MEDIA_TYPES[fmt]}; charset=utf-8"
        filters = audit_filters(args)
        await self.governor.record_fact(
            "audit_export", user=who.user, action="audit_export",
            details={"format": fmt, "filters": {k: v for k, v in filters.items() if v is not None}},
            refusal=f"{who.user} may not export the audit log now",
        )
        self.set_header("Content-Type", media_type)
        self.set_header("Content-Disposition", f'attachment; filename="jupyter-guard-audit.{fmt}"')
        query = AuditQuery(**filters, limit=EXPORT_PAGE)
        reader, header = self.guard.steward_reader, True
        while True:
            text, count, last = await reader.export_chunk(query, fmt, header)
            header = False
            if text:
                self.write(text)
            try:
                await self.flush()
            except StreamClosedError:  # the steward went away: stop reading
                return
            if count < EXPORT_PAGE:
                break
            query.after_seq = last
        self.finish(set_content_type=media_type)


class AuditVerifyHandler(GuardHandler):
    """Verify the hash chain (stewards only)."""

    @web.authenticated
    @authorized
    async def get(self):
        self.require_steward()
        result = await self.guard.steward_reader.verify()
        self.finish(dataclasses.asdict(result))
