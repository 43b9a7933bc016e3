"""A notebook's sensitivity and what an export of it would do (the export review), never recorded."""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..gates import load_file
from .base import GuardHandler


class NotebookHandler(GuardHandler):
    """Routes about one notebook of the server's contents."""

    async def notebook(self, path: str):
        from ...export import ExportError, load_notebook

        raw = await load_file(self, path)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, load_notebook, raw)
        except ExportError as e:
            raise web.HTTPError(422, f"{path} cannot be read as a notebook: {e}") from e


class NotebookSensitivityHandler(NotebookHandler):
    """A notebook's sensitivity for the UI: from the audit log plus a scan of its outputs."""

    @web.authenticated
    @authorized
    async def get(self):
        path = (self.query_args()["path"] or "").strip("/")
        if not path.endswith(".ipynb"):
            raise web.HTTPError(400, "path= names a notebook (.ipynb) relative to the server root")
        nb = await self.notebook(path)
        sens, _ = await asyncio.get_running_loop().run_in_executor(None, self.guard.gates.sensitivity, path, nb)
        sens.pop("cell_reads", None)
        self.finish(sens)


class ExportPreviewHandler(NotebookHandler):
    """What an export would do (refused, raw, redacted: counts; blocked cells), without recording.

    The scan it runs is the one the export then uses (the gate's scan cache), so a review
    followed by the download scans the notebook once.
    """

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        path, fmt, action = body["path"].strip("/"), body.get("format", "html"), body.get("action", "export")
        nb = await self.notebook(path)
        gates, loop = self.guard.gates, asyncio.get_running_loop()
        assessment = await loop.run_in_executor(None, gates.assess, self.principal(), path, nb, action, fmt,
                                                body.get("justification"), body.get("purpose"))
        reply = assessment.to_dict()
        reply["redaction"] = None
        if assessment.effect == "redact":
            _, reply["redaction"] = await loop.run_in_executor(None, gates.redact, assessment, nb)
        self.finish(reply)
