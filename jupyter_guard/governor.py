"""The one place a governed request is decided and recorded: resolve -> policy -> durable audit append.

Every server route, gate and observer goes through :class:`Governor` (reads, exports,
downloads, contents reads, credentials, classification proposals, purpose changes, access
requests, cell executions); the CLI and benchmarks too. Imports no web framework. A decision
is recorded before it is returned; when the record cannot be written the request fails
closed (:class:`~jupyter_guard.errors.Unrecorded`), so nothing governed is answered unaudited.
"""

from __future__ import annotations

import logging
import os
import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .audit import AuditEvent, AuditLog, AuditRecord
from .catalog import Catalog, Dataset, Resolution
from .catalog.locations import has_glob
from .catalog.loader import build_catalog, read_sections
from .errors import AuditError, CatalogError, CredentialError, Problem, Refused, Unrecorded
from .masking import mask_secrets
from .policy import DENY, EFFECT_ORDER, JUSTIFY, REDACT, Decision, Policy, Principal, build_policy

log = logging.getLogger(__name__)

#: request context that audit records carry (kernel/notebook/cell references, never data)
CONTEXT_FIELDS = ("kernel_id", "session_id", "notebook", "cell_id", "msg_id")
#: the effect of a permitted request that failed to be carried out (a secret that could not be looked up)
ERROR = "error"
NOT_SERVED_REDACTED = ("the server does not serve redacted copies of data files; read it in a kernel "
                       "(pd.read_csv), where the column rules apply.")


@dataclass(frozen=True)
class Governance:
    """A validated catalog and the policy read from the same directory."""

    catalog: Catalog
    policy: Policy


def load_governance(directory: str | os.PathLike, root_dir: str | os.PathLike, *,
                    allow_empty: bool = False) -> Governance:
    """Load catalog and policy together; raise CatalogError naming every problem's file:line.

    A catalog that governs nothing (no dataset, no source) is an error unless ``allow_empty``:
    an emptied or half-written catalog must never read as "nothing is governed".
    """
    problems: list[Problem] = []
    sections, files = read_sections(directory, problems)
    if not problems and not allow_empty and not any(s.key in ("datasets", "sources") and s.value for s in sections):
        problems.append(Problem(str(directory), None, "the catalog defines no dataset and no source; if that is on "
                                "purpose, set c.GuardApp.allow_empty_catalog = True"))
    return _build(sections, problems, str(root_dir), str(directory), tuple(files))


def empty_governance(root_dir: str | os.PathLike) -> Governance:
    """No catalog configured: nothing is governed; the shipped default policy applies."""
    return _build([], [], str(root_dir))


def _build(sections, problems: list[Problem], root_dir: str, directory: str = "", files: tuple = ()) -> Governance:
    catalog = build_catalog(sections, root_dir, problems, directory, files)
    policy = build_policy(sections, catalog, problems)
    if problems:
        raise CatalogError(problems)
    return Governance(catalog, policy)


def catalog_fingerprint(directory: str | os.PathLike) -> tuple:
    """Cheap change detection for reloads: (path, mtime_ns, size) of every catalog file."""
    root = Path(directory)
    if not root.is_dir():
        return ()
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".yaml", ".yml"):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True)
class Request:
    """One governed request: who wants to do what to which subject, why, and where from.

    The subject is ``target`` (a path, URI or table, resolved through the catalog) unless the
    caller already knows the datasets (a data source, the datasets a notebook read): then
    ``datasets`` names them and ``target`` only says what the record is about.
    """

    who: Principal
    action: str
    target: str | None = None
    kind: str | None = None  # path | uri | table, to resolve ``target``
    datasets: tuple[Dataset | None, ...] | None = None
    purpose: str | None = None
    justification: str | None = None
    context: Mapping[str, str | None] = field(default_factory=dict)  # CONTEXT_FIELDS
    event_type: str = "decision"
    #: False where the channel cannot hand out a redacted copy (the server's /files of a data
    #: file): a redact decision there is a refusal, with the reason saying where to read it
    serves_redacted: bool = True
    #: exports and downloads of notebooks are recorded even when nothing governed is in them
    always_record: bool = False


@dataclass(frozen=True)
class Outcome:
    """What the governor decided for one Request: every policy decision, the strictest speaking
    for all, the effect the server carries out, and the audit record once it is durable.

    ``effect`` is allow, redact or justify (permitted; justify: after a written reason), or
    justify, deny or error when refused (``permitted`` tells which).
    """

    request: Request
    decisions: tuple[Decision, ...]
    effect: str
    permitted: bool
    #: the server's own reasons beside the rules' (e.g. why a permitted redact is not served)
    reasons: tuple[str, ...] = ()
    record: AuditRecord | None = None
    #: the target's resolution (reads): the kernel needs the dataset's column rules
    resolution: Resolution | None = None
    #: a read's access: "brokered" when only the guard reads the data (jupyter_guard.broker)
    access: str = "direct"
    #: a permitted brokered read's ticket: what the kernel hands the broker to get the data
    ticket: str | None = None

    @property
    def decision(self) -> Decision:
        """The decision that speaks for the outcome: a refused one first, then the strictest."""
        return max(self.decisions, key=lambda d: (not d.permitted, EFFECT_ORDER.get(d.effect, 3)))

    @property
    def governed(self) -> bool:
        return any(d.dataset is not None for d in self.decisions)

    def but(self, effect: str, *reasons: str, permitted: bool | None = None) -> Outcome:
        """The outcome with another effect (the server's adjustment) and why."""
        permitted = effect not in (DENY, ERROR) if permitted is None else permitted
        return replace(self, effect=effect, permitted=permitted, reasons=(*self.reasons, *reasons))

    def message(self) -> str:
        """Who, what, why and whom to ask, for a refusal ("" when permitted)."""
        if self.permitted:
            return ""
        d = self.decision
        if self.effect == ERROR:
            return " ".join(self.reasons)
        if d.permitted:  # the rule permitted; the server cannot carry it out this way
            what = f"{d.dataset!r} ({d.label} data)" if d.dataset else str(d.target)
            return f"{d.user} may {d.action} {what} only {d.effect}ed: " + " ".join((*d.reasons, *self.reasons))
        return replace(d, reasons=(*d.reasons, *self.reasons)).message()

    def to_dict(self) -> dict:
        d = self.decision
        out = {**d.to_dict(), "effect": self.effect, "permitted": self.permitted,
               "reasons": [*d.reasons, *self.reasons], "audit_seq": self.record.seq if self.record else None}
        if not self.permitted:
            out["message"] = self.message()
        if self.access != "direct":
            out["access"] = self.access
        if self.ticket:
            out["ticket"] = self.ticket
        return out


class Governor:
    """The one place a request becomes a decision and a durable record.

    ``assess`` decides without recording (previews: the catalog listing, an export review);
    ``decide`` decides, records durably before it returns, and raises :class:`Refused` (403:
    the refusal is on the record) or :class:`Unrecorded` (503: nothing is done unaudited);
    ``record_fact`` records what is not a policy decision (a purpose change, an access request,
    a cell execution) with the same fail-closed answer. Free text from users (justifications,
    reasons, code) is masked here, once, before it is stored. Holds the current governance;
    ``swap`` replaces it atomically.
    """

    def __init__(self, governance: Governance, audit: AuditLog, extra_roles: Mapping | None = None):
        #: copies of governed files made through the server: path -> (dataset, copied from)
        self.copies: dict[str, tuple[str, str]] = {}
        self.loaded = self.governance = governance  # as loaded; and in force (with the copies)
        self.audit = audit
        self.extra_roles = dict(extra_roles or {})
        #: called with each stored record (the server routes them to jupyter_events)
        self.on_record: list[Callable[[AuditRecord], None]] = []
        #: who reads brokered datasets: set where this governor's owner also serves the reads
        #: (jupyter_guard.broker.Tickets); ``brokers_by_label``: the policy's brokered_labels apply
        self.tickets = None
        self.brokers_by_label = False

    @property
    def catalog(self) -> Catalog:
        return self.governance.catalog

    @property
    def policy(self) -> Policy:
        return self.governance.policy

    def swap(self, governance: Governance) -> None:
        """Put a (re)loaded catalog in force, with the copies made through the server."""
        self.loaded = governance
        self.governance = replace(governance, catalog=governance.catalog.with_copies(self.copies))

    def add_copy(self, path: str, dataset: str, source: str) -> None:
        """Govern ``path`` (normalised) as ``dataset`` from now on; it was copied from ``source``.
        Its ``lineage`` record (see :meth:`restore_copies`) is what keeps this after a restart."""
        self.copies[path] = (dataset, source)
        self.swap(self.loaded)

    async def derive(self, who: Principal, target: str, datasets: Iterable[Dataset], *, via: str,
                     source: str, shape: str = "file", **fields) -> tuple[str, Dataset]:
        """Govern a file made from governed data -- a copy, a renamed file's new name, a frame
        written -- as its most sensitive source, from now on and after restarts: a ``lineage``
        record first (dataset, new path, ``details.from``), then the path is governed.

        ``shape``: ``file`` (one file, a plain name), ``dir`` (a directory and everything below
        it: Dask's and Spark's partitioned outputs) or ``glob`` (the files a pattern such as
        ``out/part-*.csv`` names, as Dask writes them).

        Returns (the normalised path or pattern, the dataset it is governed as). Raises
        ValueError for a target that does not fit its shape, Unrecorded when the record cannot
        be written (then nothing is governed anew: the caller must not make the file).
        """
        from .catalog.model import location_key

        root = self.catalog.root_dir
        if shape == "file":
            if has_glob(target):
                raise ValueError(f"a file made from governed data needs a plain name (no * ? [ ]): {target!r}")
            path = self.catalog.resolve(target, "path").target
        elif shape == "dir":
            path = location_key("path", target.rstrip("/") + "/", root)
        elif shape == "glob" and has_glob(target):
            path = location_key("path", target, root)
        else:
            raise ValueError(f"cannot govern {target!r} as a {shape}")
        ds = max(datasets, key=lambda d: d.label.rank)
        details = {**(fields.pop("details", None) or {}), "from": source}
        await self.record_fact("lineage", user=who.user, action=via, target=path, dataset=ds.name,
                               label=ds.label.name, details=details,
                               refusal=f"the {via} of {source} to {target} is not made", **fields)
        self.add_copy(path, ds.name, source)
        return path, ds

    async def drop_copy(self, who: Principal, path: str) -> tuple[str, str]:
        """A steward's decision that a derived file is no longer governed as its source (it was
        promoted into the catalog, or checked and found harmless): recorded first, then in force.
        Returns (path, the dataset it was governed as); KeyError when it is not a derived file."""
        dataset, source = self.copies[path]
        await self.record_fact("lineage", user=who.user, action="drop", target=path, dataset=dataset,
                               details={"from": source}, refusal=f"{path} stays governed as {dataset}")
        self.copies.pop(path, None)
        self.swap(self.loaded)
        return path, dataset

    def restore_copies(self) -> int:
        """Govern again every copy the log's ``lineage`` records name (at start); how many."""
        from .audit import AuditQuery

        for rec in self.audit.query(AuditQuery(event_type="lineage", limit=None)):  # oldest first
            self._copy_from(rec.event)
        self.swap(self.loaded)
        return len(self.copies)

    def apply_lineage(self, event: AuditEvent) -> None:
        """Put one stored ``lineage`` record in force (the guard service, for its clients' writes)."""
        self._copy_from(event)
        self.swap(self.loaded)

    def _copy_from(self, e: AuditEvent) -> None:
        if e.action == "drop" and e.target:
            self.copies.pop(e.target, None)
        elif e.dataset and e.target and not e.target.endswith(".ipynb"):
            self.copies[e.target] = (e.dataset, str((e.details or {}).get("from") or ""))

    def principal(self, user: str, groups=()) -> Principal:
        return self.policy.principal(user, groups, self.extra_roles)

    # -- deciding --------------------------------------------------------------------------

    def assess(self, req: Request) -> Outcome:
        """Decide without recording. Raises ValueError for a target that cannot be resolved."""
        gov = self.governance  # one snapshot, even if a reload swaps it meanwhile
        resolution = None
        subjects = req.datasets
        target = req.target
        if subjects is None:
            resolution = gov.catalog.resolve(req.target, req.kind)
            subjects, target = (resolution.dataset,), resolution.target
        decisions = tuple(
            gov.policy.decide(req.who, ds, req.action, target=target, purpose=req.purpose,
                              justification=req.justification)
            for ds in (subjects or (None,))
        )
        refused = [d for d in decisions if not d.permitted]
        strictest = max(refused or decisions, key=lambda d: EFFECT_ORDER.get(d.effect, 3)).effect
        access = "direct"
        if resolution is not None and resolution.dataset is not None and req.action == "read":
            access = self.access_of(resolution.dataset, gov.policy)
        outcome = Outcome(req, decisions, strictest, permitted=not refused, resolution=resolution, access=access)
        if outcome.permitted and strictest == REDACT and not req.serves_redacted:
            return outcome.but(DENY, NOT_SERVED_REDACTED)
        return outcome

    def access_of(self, dataset: Dataset, policy: Policy | None = None) -> str:
        """How ``dataset`` is read: "brokered" (only the guard reads it) or "direct"."""
        return access_of(dataset, policy or self.policy, self.catalog, by_label=self.brokers_by_label)

    def effect_of(self, who: Principal, dataset: Dataset | None, action: str, *, target: str | None = None,
                  purpose: str | None = None) -> str:
        """A preview of one policy answer (catalog listings): the rule's effect, nothing recorded."""
        return self.policy.decide(who, dataset, action, target=target, purpose=purpose).effect

    async def decide(self, req: Request, *, outcome: Outcome | None = None, details: Mapping | None = None) -> Outcome:
        """Decide (or take ``outcome``, an adjusted ``assess``) and record durably, then answer.

        Permitted reads of ungoverned data are not recorded: the log is about governed data,
        and a kernel reads many ungoverned files. Raises Refused / Unrecorded (see the class).
        """
        outcome = outcome or self.assess(req)
        if _worth_recording(outcome):
            event = await self._masked(self._decision_event(outcome, details))
            try:
                outcome = replace(outcome, record=await self.append_async(event))
            except AuditError as e:
                raise self._unrecorded(outcome, e) from e
        return _answer(self._ticketed(outcome))

    def _ticketed(self, o: Outcome) -> Outcome:
        """A permitted, recorded brokered read with the ticket that lets the broker serve it once."""
        if not (o.permitted and o.access == "brokered" and o.request.action == "read" and o.record is not None
                and self.tickets is not None):
            return o
        d = o.decision
        return replace(o, ticket=self.tickets.issue(user=o.request.who.user, dataset=d.dataset, target=d.target,
                                                    effect=o.effect, audit_seq=o.record.seq))

    async def decide_credential(self, req: Request, source, credentials):
        """A data source's secret for ``req`` (action ``credential``): decided, the secret looked
        up through ``credentials`` only when permitted (a failed lookup is the ``error`` effect),
        recorded with the provider that answered, then returned as (outcome, resolved source).
        Raises Refused / Unrecorded as :meth:`decide`; the secret is never recorded."""
        from .sources import resolve_source

        outcome = self.assess(req)
        resolved = None
        if outcome.permitted and self.access_of(source.as_dataset()) == "brokered":
            # only the guard connects: the kernel gets a handle for brokered SQL reads, no secret
            outcome = replace(outcome, access="brokered")
            return await self.decide(req, outcome=outcome, details={"provider": None, "brokered": True}), None
        if outcome.permitted:
            try:
                resolved = await asyncio.get_running_loop().run_in_executor(None, resolve_source, source, credentials)
            except CredentialError as e:
                outcome = outcome.but(ERROR, str(e))
        details = {"provider": resolved.provider if resolved else None, "credential": source.credential}
        return await self.decide(req, outcome=outcome, details=details), resolved

    def decide_blocking(self, req: Request, *, details: Mapping | None = None) -> Outcome:
        """``decide`` for code without an event loop (the CLI, benchmarks)."""
        outcome = self.assess(req)
        if _worth_recording(outcome):
            try:
                outcome = replace(outcome, record=self.append(mask_event(self._decision_event(outcome, details))))
            except AuditError as e:
                raise self._unrecorded(outcome, e) from e
        return _answer(outcome)

    def _decision_event(self, o: Outcome, details: Mapping | None) -> AuditEvent:
        req, d = o.request, o.decision
        named = [x for x in o.decisions if x.dataset]
        top = max(named, key=lambda x: self._rank(x.label), default=d)
        justified = any(x.effect == JUSTIFY for x in o.decisions)
        extra = {"rule": d.rule, "permitted": o.permitted}
        if len(o.decisions) > 1:
            extra["rules"] = sorted({x.rule for x in o.decisions if x.rule})
        extra.update(details or {})
        context = {k: req.context.get(k) for k in CONTEXT_FIELDS}
        if req.event_type != "decision" and not context.get("notebook") and req.target and req.target.endswith(".ipynb"):
            context["notebook"] = req.target
        return AuditEvent(
            event_type=req.event_type,
            user=req.who.user,
            action=req.action,
            target=req.target if o.resolution is None else d.target,
            dataset=top.dataset,
            label=top.label,
            decision=o.effect,
            reasons=tuple(r for x in o.decisions for r in x.reasons)[:20] + o.reasons,
            purpose=req.purpose,
            justification=req.justification if justified else None,
            details=extra,
            **context,
        )

    def _rank(self, label: str | None) -> int:
        found = self.catalog.label(label) if label else None
        return found.rank if found else (10**6 if label else -1)  # a label the catalog forgot ranks highest

    def _unrecorded(self, o: Outcome, error: Exception) -> Unrecorded:
        d = o.decision
        message = (
            f"{d.user} may not {d.action} {d.target or o.request.target}: the audit log cannot record "
            f"this decision ({error}), and governed access is never granted unaudited. "
            "Tell your JupyterHub admin; the data itself is unchanged."
        )
        body = {**d.to_dict(), "effect": DENY, "permitted": False, "audit_seq": None,
                "reasons": [f"audit unavailable: {error}"]}
        return Unrecorded(message, body=body, decision=replace(d, effect=DENY, permitted=False))

    # -- recording what is not a decision ----------------------------------------------------

    async def record_fact(self, event_type: str, *, refusal: str, user: str | None, action: str | None = None,
                          known_secrets: Iterable[str] = (), **fields) -> AuditRecord:
        """Record a fact durably (masked) before it takes effect; Unrecorded when it cannot.

        ``refusal`` says what is then not done, e.g. "the purpose was not changed". ``fields``
        are AuditEvent fields (target, dataset, label, decision, reasons, purpose,
        justification, kernel_id, notebook, cell_id, msg_id, details).
        """
        event = AuditEvent(event_type=event_type, user=user, action=action, **fields)
        event = await self._masked(event, known_secrets)
        try:
            return await self.append_async(event)
        except AuditError as e:
            message = (f"{refusal}: the audit log cannot record it ({e}), and this is never done unaudited. "
                       "Tell your JupyterHub admin.")
            raise Unrecorded(message, body={"effect": DENY, "permitted": False, "audit_seq": None}) from e

    def record_fact_blocking(self, event_type: str, *, user: str | None, action: str | None = None,
                             **fields) -> AuditRecord:
        """:meth:`record_fact` for callers without an event loop (the nbconvert preprocessor).

        Raises :class:`~jupyter_guard.errors.AuditError` when the log cannot record it.
        """
        return self.append(mask_event(AuditEvent(event_type=event_type, user=user, action=action, **fields)))

    async def _masked(self, event: AuditEvent, known_secrets: Iterable[str] = ()) -> AuditEvent:
        known = tuple(known_secrets)
        if not (event.justification or (event.details or {}).get("code") or known):
            return event  # nothing free-form to mask (the hot path of reads)
        return await asyncio.get_running_loop().run_in_executor(None, mask_event, event, known)

    # -- the log -----------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> AuditRecord:
        """Append durably (blocking) and tell the listeners."""
        rec = self.audit.append(event)
        self._notify(rec)
        return rec

    async def append_async(self, event: AuditEvent) -> AuditRecord:
        rec = await self.audit.append_async(event)
        self._notify(rec)
        return rec

    def _notify(self, rec: AuditRecord) -> None:
        for listener in self.on_record:
            try:
                listener(rec)
            except Exception:  # a broken event sink must not undo a stored record
                log.exception("jupyter_guard: audit listener failed for record %d", rec.seq)

    def discoverer(self, who: Principal, *, steward: bool) -> Callable[[Dataset], bool]:
        return discoverer(self.policy, who, steward=steward)


def mask_event(event: AuditEvent, known_secrets: Iterable[str] = ()) -> AuditEvent:
    """The event with secrets masked in its free text: the justification and a cell's code."""
    changes = {}
    if event.justification:
        changes["justification"] = mask_secrets(event.justification, known_secrets)
    details = event.details or {}
    if isinstance(details.get("code"), str):
        changes["details"] = {**details, "code": mask_secrets(details["code"], known_secrets)}
    return replace(event, **changes) if changes else event


def access_of(dataset: Dataset, policy: Policy, catalog: Catalog, *, by_label: bool) -> str:
    """"brokered" or "direct": the dataset's own ``access``, else (``by_label``: under a guard
    service) brokered when its label is one of the policy's brokered labels — when the policy
    names none, the catalog's most sensitive label."""
    if dataset.access:
        return dataset.access
    # a table of a brokered source is brokered: only the guard holds the source's secret
    for loc in dataset.locations:
        first = loc.pattern.split(".", 1)[0].lower() if loc.kind == "table" else None
        src = next((s for n, s in catalog.sources.items() if n.lower() == first), None) if first else None
        if src is not None and access_of(src.as_dataset(), policy, catalog, by_label=by_label) == "brokered":
            return "brokered"
    if not by_label:
        return "direct"
    labels = policy.brokered_labels
    if labels is None:
        top = max(catalog.labels, key=lambda label: label.rank, default=None)
        labels = (top.name,) if top is not None else ()
    return "brokered" if dataset.label.name in labels else "direct"


def _answer(outcome: Outcome) -> Outcome:
    if outcome.permitted:
        return outcome
    status = 502 if outcome.effect == ERROR else 403
    raise Refused(outcome.message(), body=outcome.to_dict(), outcome=outcome, status=status)


def discoverer(policy: Policy, who: Principal, *, steward: bool) -> Callable[[Dataset], bool]:
    """Whether ``who`` may know that a dataset (or a source's ``as_dataset()``) exists.

    Stewards see everything; everyone else needs the policy's ``discover`` action. Memoised
    per dataset name and label, so one listing or one batch of paths asks the policy once each.
    """
    seen: dict[tuple[str, str], bool] = {}

    def visible(ds: Dataset) -> bool:
        if steward:
            return True
        key = (ds.name, ds.label.name)
        if key not in seen:
            seen[key] = policy.decide(who, ds, "discover").permitted
        return seen[key]

    return visible


def _worth_recording(outcome: Outcome) -> bool:
    """Governed data, every refusal and every notebook export are recorded; a permitted
    ungoverned read is not."""
    return outcome.request.always_record or outcome.governed or not outcome.permitted
