"""Stewards' reads of the log -- query pages, export pages, verification -- in their own processes.

A page of 5,000 records is decoded and encoded in Python, and verification walks the whole
chain: run in the server's process, even on other threads, they hold its interpreter lock for
that long and every governed read waits (benchmarks/bench_steward_impact.py measured reads/s
falling to a tenth). A reader process opens its own read-only connection to the store, runs at
a lower CPU priority than the server, paces itself when kept busy without pause (at most half a
CPU each), and hands back text ready to send, so reads keep their latency while stewards work. A store that cannot be reopened in another process (one without
``reader_spec``) is read on threads instead.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .chain import VerifyResult
from .export import RecordWriter
from .log import AuditLog
from .model import AuditQuery

log = logging.getLogger("jupyter_guard.audit")

# -- what a reader does (the same code on a thread or in a reader process) --------------------


def page_json(audit: AuditLog, query: AuditQuery) -> str:
    """One page of GET audit as JSON text: the records, and the seq to continue after."""
    rows = [r.to_dict() for r in audit.query(query)]
    more = query.limit is not None and len(rows) == query.limit
    return json.dumps({"records": rows, "next": rows[-1]["seq"] if more else None})


def export_chunk(audit: AuditLog, query: AuditQuery, fmt: str, header: bool) -> tuple[str, int, int | None]:
    """One chunk of an export in ``fmt``: its text, how many records, the last seq."""
    out = io.StringIO()
    records = audit.query(query)
    RecordWriter(fmt, out, header=header).write(records)
    return out.getvalue(), len(records), records[-1].seq if records else None


# -- inside a reader process ------------------------------------------------------------------

_own: dict[str, Any] = {}


def _start_reader(spec: tuple[type, dict], key: bytes, anchor_path: str | None, nice: int, duty: float) -> None:
    if nice:
        os.nice(nice)  # yield the CPU to the server's governed reads
    cls, kwargs = spec
    _own.update(log=AuditLog(cls(**kwargs), key, anchor_path=anchor_path or False, group_commit=False),
                duty=duty, rest_until=0.0)


def _paced(job, *args):
    """Run one job, but first rest for what the previous one earned: a reader kept busy without
    pause (stewards paging flat out) uses at most ``duty`` of a CPU. An idle reader never waits."""
    wait = _own["rest_until"] - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    t0 = time.monotonic()
    try:
        return job(_own["log"], *args)
    finally:
        took = time.monotonic() - t0
        _own["rest_until"] = time.monotonic() + took * (1 / _own["duty"] - 1)


def _page(query: AuditQuery) -> str:
    return _paced(page_json, query)


def _export(query: AuditQuery, fmt: str, header: bool) -> tuple[str, int, int | None]:
    return _paced(export_chunk, query, fmt, header)


def _verify() -> VerifyResult:
    return _paced(AuditLog.verify)


# -- in the server ----------------------------------------------------------------------------


class StewardReader:
    """Runs stewards' reads of ``audit`` off the server's process (or threads, see module doc).

    Pages and exports share one reader; verification has its own, so a page never queues behind
    a whole-chain walk, and verifications asked for while one runs share its result.
    """

    def __init__(self, audit: AuditLog, *, processes: bool = True, nice: int = 19, duty: float = 0.5):
        self.audit = audit
        spec = audit.store.reader_spec() if processes else None
        self.in_processes = spec is not None
        if spec is not None:
            if not 0 < duty <= 1:
                raise ValueError("duty must be in (0, 1]")
            args = (spec, audit._key, audit.anchor_path, nice, duty)
            self._new = lambda: ProcessPoolExecutor(  # noqa: E731
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_reader, initargs=args)
        else:
            self._new = lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="jupyter-guard-steward")  # noqa: E731
        self._pools: dict[str, Executor] = {}
        self._verifying: asyncio.Future | None = None

    def describe(self) -> str:
        return "reader processes" if self.in_processes else "reader threads"

    async def page(self, query: AuditQuery) -> str:
        if self.in_processes:
            return await self._run("pages", _page, query)
        return await self._run("pages", page_json, self.audit, query)

    async def export_chunk(self, query: AuditQuery, fmt: str, header: bool) -> tuple[str, int, int | None]:
        if self.in_processes:
            return await self._run("pages", _export, query, fmt, header)
        return await self._run("pages", export_chunk, self.audit, query, fmt, header)

    async def verify(self) -> VerifyResult:
        if self._verifying is None or self._verifying.done():
            job = self._run("verify", _verify) if self.in_processes else self._run("verify", self.audit.verify)
            self._verifying = asyncio.ensure_future(job)
        return await asyncio.shield(self._verifying)

    async def _run(self, pool: str, fn, *args) -> Any:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self._pools.get(pool) or self._pools.setdefault(pool, self._new())
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except BrokenProcessPool:  # a reader died (OOM killer, a signal): a new one, once
                self._pools.pop(pool, None)
                if attempt == 2:
                    raise
                log.warning("jupyter_guard: an audit reader process died; starting a new one")

    def close(self) -> None:
        for executor in self._pools.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
