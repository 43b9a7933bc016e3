"""The audit log: seal events into the chain, durably, with group commit.

One writer thread drains a queue of pending events and commits them in batches, one
transaction (and so one fsync) per batch, so many concurrent writers share the cost of
durability. ``append`` returns only when its record is committed and the head anchor moved
past it; when a batch fails, every caller in it gets the same
:class:`~jupyter_guard.errors.AuditUnavailable` and none of the batch was stored.

The log fails closed: it refuses to extend a chain whose head anchor shows that records were
deleted, is missing while the store has records, or does not verify with the key. After a
deliberate restore from a backup, verify and then call :meth:`AuditLog.reanchor`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, NamedTuple

from ..errors import AuditError, AuditKeyError, AuditUnavailable
from .chain import (
    PreparedEvent,
    Sealer,
    VerifyResult,
    compute_mac,
    genesis_mac,
    prepare_event,
    read_anchor,
    verify_rows,
    write_anchor,
)
from .model import AuditEvent, AuditQuery, AuditRecord
from .store import AuditStore

__all__ = ["AuditLog"]

_STOP = object()


class _LoopWaiter(NamedTuple):
    """An ``append_async`` caller: an asyncio future that lives on its own event loop."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


def _settle(waiters: list[Any], outcomes: list[tuple[Any, Any]]) -> None:
    """Hand each caller its record or error.

    Thread callers get theirs directly; asyncio callers are settled with ONE thread-safe
    callback per loop per batch (not one wake-up per event), which is what lets a few
    hundred coroutines share a commit cheaply.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, Any]]] = {}
    for waiter, (record, error) in zip(waiters, outcomes):
        if isinstance(waiter, _LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, record, error))
        elif not waiter.cancelled():
            if error is None:
                waiter.set_result(record)
            else:
                waiter.set_exception(error)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, items)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass


def _settle_on_loop(items: list[tuple[asyncio.Future, Any, Any]]) -> None:
    for future, record, error in items:
        if future.done():  # cancelled while waiting; the event is still logged
            continue
        if error is None:
            future.set_result(record)
        else:
            future.set_exception(error)


class AuditLog:
    """Append-only, tamper-evident audit log over an :class:`AuditStore`.

    ``key`` is the HMAC key (see :func:`jupyter_guard.credentials.load_audit_key`).
    ``anchor_path`` is where the head anchor lives (default: the store's, ``<db>.head`` for
    SQLite); ``False`` turns the anchor off (truncation is then not detectable).
    ``max_batch`` bounds one group commit; ``linger`` (seconds) is how long the writer waits for
    the writers of the previous batch to come back before committing (only when there were
    several; a lone writer never waits). ``group_commit=False`` makes every ``append`` commit
    on its own in the calling thread (for comparison; much slower under concurrency).
    The log owns the store: :meth:`close` closes it.
    """

    def __init__(
        self,
        store: AuditStore,
        key: bytes,
        *,
        anchor_path: str | bool | None = None,
        max_batch: int = 1000,
        group_commit: bool = True,
        linger: float = 0.0005,
        log: logging.Logger | None = None,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.store = store
        self._sealer = Sealer(key)  # checks the key
        self._key = bytes(key)
        if anchor_path is False or anchor_path == "":
            self.anchor_path: str | None = None
        elif anchor_path is None or anchor_path is True:
            self.anchor_path = store.default_anchor_path()
        else:
            self.anchor_path = str(anchor_path)
        self.max_batch = max_batch
        self.linger = linger
        self.group_commit = group_commit
        self.log = log or getattr(store, "log", None) or logging.getLogger("jupyter_guard.audit")
        self._high_water = 0  # no committed seq may be <= this: catches truncation while open
        self._head_checked = False
        self._direct_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._closed = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if group_commit:
            self._thread = threading.Thread(
                target=self._run, name="jupyter-guard-audit-writer", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ appending

    def append(self, event: AuditEvent) -> AuditRecord:
        """Seal and store ``event``; return its record once it is durable.

        Raises :class:`AuditUnavailable` when it could not be stored (nothing was stored).
        """
        prepared = prepare_event(event)
        if not self.group_commit:
            self._check_open()
            with self._direct_lock:
                return self._commit_batch([prepared])[0]
        return self._submit(prepared).result()

    async def append_async(self, event: AuditEvent) -> AuditRecord:
        """Like :meth:`append`, without blocking the event loop."""
        prepared = prepare_event(event)
        loop = asyncio.get_running_loop()
        if not self.group_commit:
            return await loop.run_in_executor(None, self.append, event)
        waiter = _LoopWaiter(loop, loop.create_future())
        self._enqueue(prepared, waiter)
        return await waiter.future

    def _check_open(self) -> None:
        if self._closed:
            raise AuditUnavailable(f"the audit log ({self.store.describe()}) is closed")

    def _submit(self, prepared: PreparedEvent) -> Future[AuditRecord]:
        fut: Future[AuditRecord] = Future()
        self._enqueue(prepared, fut)
        return fut

    def _enqueue(self, prepared: PreparedEvent, waiter: Any) -> None:
        with self._state_lock:
            self._check_open()
            self._queue.put((prepared, waiter))

    def _run(self) -> None:
        q = self._queue
        expect = 1
        while True:
            item = q.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            # Adaptive linger: when the previous batch had several writers, wait a moment for
            # as many again (they are waking up from the previous commit), so they share this
            # commit's fsync instead of each paying for a small one. A lone writer never waits.
            want = min(self.max_batch, expect)
            deadline = time.monotonic() + self.linger if want > 1 else 0.0
            while len(batch) < self.max_batch:
                try:
                    if len(batch) < want:
                        left = deadline - time.monotonic()
                        nxt = q.get(timeout=left) if left > 0 else q.get_nowait()
                    else:
                        nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            expect = len(batch)
            waiters = [w for _, w in batch]
            for w in waiters:
                if isinstance(w, Future):
                    w.set_running_or_notify_cancel()  # a cancelled caller's event is still logged
            try:
                records = self._commit_batch([p for p, _ in batch])
                outcomes: list[tuple[Any, Any]] = [(r, None) for r in records]
            except BaseException as exc:  # every caller of the batch learns it failed
                if not isinstance(exc, AuditError):
                    self.log.exception("audit writer failed on a batch of %d", len(batch))
                    exc = AuditUnavailable(
                        f"audit log ({self.store.describe()}) failed to append: "
                        f"{type(exc).__name__}: {exc}"
                    )
                outcomes = [(None, exc)] * len(batch)
            _settle(waiters, outcomes)
            if stop:
                return

    def _seal(self, seq: int, prev: Any, item: PreparedEvent) -> Any:
        if seq <= self._high_water:
            raise AuditUnavailable(
                f"audit log ({self.store.describe()}) refuses to append: the store's newest "
                f"record is {seq - 1} but record {self._high_water} was committed before; "
                "records were deleted (truncation). Run `jupyter guard audit verify`."
            )
        return self._sealer(seq, prev, item)

    def _commit_batch(self, batch: list[PreparedEvent]) -> list[AuditRecord]:
        if not self._head_checked:
            self._check_head()
        records = self.store.append(batch, self._seal)
        last = records[-1]
        self._high_water = max(self._high_water, last.seq)
        if self.anchor_path is not None:
            try:
                write_anchor(self.anchor_path, self._key, last.seq, last.mac)
            except (OSError, AuditError) as exc:
                why = exc.strerror or exc if isinstance(exc, OSError) else exc
                raise AuditUnavailable(
                    f"audit records {records[0].seq}..{last.seq} were stored in "
                    f"{self.store.describe()}, but the head anchor {self.anchor_path} could not "
                    f"be written ({why}); truncation would go undetected"
                ) from None
        return records

    def _check_head(self) -> None:
        """Before the first append: does the head anchor agree with the store?"""
        path = self.anchor_path
        if path is None:
            tail = self.store.tail()
            self._high_water = tail[0] if tail else 0
            self._head_checked = True
            return
        where = f"({self.store.describe()})"
        try:
            # The anchor is read BEFORE the tail: another process moves it only after its
            # commit, so an anchor ahead of the tail read after it means deleted records.
            for attempt in range(3):
                anchor = read_anchor(path, self._key)
                tail = self.store.tail()
                if (
                    anchor is None
                    and tail is not None
                    and attempt < 2
                    and read_anchor(path, self._key) is not None
                ):
                    continue  # another process anchored its first batch meanwhile
                break
        except AuditError as exc:
            raise AuditUnavailable(str(exc)) from None
        if anchor is None:
            if tail is not None:
                raise AuditUnavailable(
                    f"audit log {where} refuses to append: the head anchor {path} is missing "
                    f"but the store holds records up to {tail[0]}; records may have been "
                    "deleted. Verify the log, then re-anchor it (AuditLog.reanchor)."
                )
            try:
                write_anchor(path, self._key, 0, genesis_mac(self._key).hex())
            except OSError as exc:
                raise AuditUnavailable(
                    f"audit log {where}: cannot write the head anchor {path} "
                    f"({exc.strerror or exc})"
                ) from None
            self._head_checked = True
            return
        if not anchor.valid:
            raise AuditUnavailable(
                f"audit log {where} refuses to append: the head anchor {path} does not verify "
                "with the audit key (it was altered, or the key is wrong)"
            )
        tail_seq = tail[0] if tail else 0
        if anchor.seq > tail_seq:
            raise AuditUnavailable(
                f"audit log {where} refuses to append: the store ends at record {tail_seq} but "
                f"the head anchor {path} says {anchor.seq} were committed; records were "
                "deleted (truncation). Run `jupyter guard audit verify`."
            )
        if anchor.seq == 0:
            at_anchor = genesis_mac(self._key)
        else:
            row = next(iter(self.store.iter_rows(anchor.seq)), None)
            at_anchor = bytes(row.mac) if row is not None and row.seq == anchor.seq else b""
        if at_anchor.hex() != anchor.mac:
            raise AuditUnavailable(
                f"audit log {where} refuses to append: record {anchor.seq} is not the one the "
                f"head anchor {path} names; the log was truncated and rewritten"
            )
        self._high_water = max(self._high_water, tail_seq)
        self._head_checked = True

    # ------------------------------------------------------------------ checking

    def check_key(self) -> None:
        """Raise :class:`AuditKeyError` unless the newest record verifies with the key."""
        tail = self.store.tail()
        if tail is None:
            return
        row = next(iter(self.store.iter_rows(tail[0])), None)
        if row is None:  # pragma: no cover - the tail vanished between two reads
            return
        if compute_mac(self._key, bytes(row.prev_mac), bytes(row.payload)) != bytes(row.mac):
            raise AuditKeyError(
                f"the audit key does not match the log at {self.store.describe()} (or its "
                f"newest record, {row.seq}, was altered); use the key this log was written "
                "with, never a new one"
            )

    def verify(self) -> VerifyResult:
        """Walk the whole chain; report the first bad record (see :mod:`.chain`)."""
        anchor = None
        if self.anchor_path is not None:
            try:
                anchor = read_anchor(self.anchor_path, self._key)
            except AuditError as exc:
                return VerifyResult(False, 0, None, str(exc), None)
        return verify_rows(
            self.store.iter_rows(1), self._key, anchor=anchor, anchor_path=self.anchor_path
        )

    def reanchor(self) -> VerifyResult:
        """Verify the chain without the anchor and, if it is sound, anchor its current head.

        For an administrator after a deliberate restore: it accepts the log as it is now.
        """
        result = verify_rows(self.store.iter_rows(1), self._key)
        if result.ok and self.anchor_path is not None:
            tail = self.store.tail()
            seq, mac = tail if tail else (0, genesis_mac(self._key).hex())
            write_anchor(self.anchor_path, self._key, seq, mac, force=True)
            self.log.warning("audit head anchor %s reset to record %d", self.anchor_path, seq)
            self._head_checked = False
        return result

    def query(self, q: AuditQuery) -> list[AuditRecord]:
        return self.store.query(q)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the store. Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        with self._direct_lock:
            self.store.close()

    def __enter__(self) -> AuditLog:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
