"""GuardApp: the jupyter_server extension that wires catalog, policy and audit into a server.

Heavy things are built in `initialize_settings`; the catalog reload task starts in
`_start_jupyter_server_extension` (the event loop is running then); `stop_extension`
drains the audit log. Misconfiguration stops the server: an extension that failed to load
would otherwise leave governed data ungoverned.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import time
import os
from datetime import datetime, timezone
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Dict, Enum, Float, Int, List, Type, Unicode, default

from .._version import __version__
from ..audit import AuditLog, AuditStore, SQLiteAuditStore
from ..audit.readers import StewardReader
from ..credentials import (
    CredentialChain,
    EnvSecrets,
    FileSecrets,
    KeyringProvider,
    KeyringSecrets,
    SecretSource,
    load_audit_key,
    load_key_file,
)
from ..errors import AuditError, CatalogError, CredentialError, GovernanceRefusal
from ..export.governance import ExportSettings, NotebookExports
from ..governor import Governance, Governor, catalog_fingerprint, discoverer, empty_governance, load_governance
from ..paths import default_audit_db, default_audit_dir, default_key_file
from ..policy import Policy, Principal
from .bindings import KernelBindings, install_identity, install_kernel_launch, kernel_owner
from .gates import install_gates, save_hook
from .handlers import default_handlers
from .observer import CellTracker, observing_connection_class

EVENT_SCHEMA_ID = "https://events.jupyter.org/jupyter_guard/audit/v1"
#: what a slim audit event carries: enough for the UI to know what to refresh, nothing about the work
SLIM_EVENT = ("seq", "time", "event_type", "kernel_id")
EVENT_SCHEMA = Path(__file__).parent.parent / "event_schemas" / "audit" / "v1.yaml"


class GuardApp(ExtensionApp):
    name = "jupyter_guard"
    description = "Data governance for Jupyter: catalog labels, policy, redaction and an audit log."

    catalog_dir = Unicode(
        "",
        config=True,
        help="""Directory of catalog and policy YAML files (labels, datasets, roles, rules).
        Relative dataset locations in it are relative to the server's root_dir. Empty: no
        catalog, nothing is governed (a warning is logged). A configured directory that is
        missing or invalid stops the server.""",
    )
    catalog_reload_interval = Float(
        2.0,
        config=True,
        help="Seconds between checks of the catalog directory for edits (0 disables reloading).",
    )
    catalog_removal_delay = Float(
        10.0,
        config=True,
        help="""Seconds a valid catalog edit that REMOVES datasets or sources must stay unchanged
        before it takes effect (additions and changes apply at once). A deleted or truncated file
        seen for a moment mid-edit never ungoverns data. 0: removals apply at once.""",
    )
    steward_reader_processes = Bool(
        True,
        help="Run stewards' audit queries, exports and verification in reader processes of their own "
             "(lower CPU priority, own read-only connection), so governed reads keep their latency while "
             "stewards work. False: threads of the server's process (stores without a reader fall back to those).",
    ).tag(config=True)
    allow_empty_catalog = Bool(
        False,
        config=True,
        help="""Accept a catalog that defines no dataset and no source. Off by default: an empty
        catalog (at start or after an edit) is an error, so governance never turns off by accident.""",
    )
    audit_dir = Unicode(
        config=True,
        help="Local directory of the default audit database and key file. Never on NFS.",
    )

    @default("audit_dir")
    def _default_audit_dir(self):
        return default_audit_dir()

    audit_store_class = Type(
        default_value=SQLiteAuditStore,
        klass=AuditStore,
        config=True,
        help="The audit store. Configure it as c.<StoreClass>.<trait>, e.g. c.SQLiteAuditStore.path.",
    )
    audit_key_file = Unicode(
        "",
        config=True,
        help="""File holding the audit HMAC key (created 0600 on first start). Default:
        <audit_dir>/audit.key. Ignored when audit_key_keyring_backend is set.""",
    )
    audit_key_keyring_backend = Unicode(
        "",
        config=True,
        help="""Dotted class of a keyring backend holding the audit key (e.g.
        keyrings.cryptfile.cryptfile.CryptFileKeyring). The backend is always named
        explicitly: the OS default may prompt, and a server never prompts.""",
    )
    audit_key_name = Unicode("audit-key", config=True, help="Name of the audit key in the keyring.")
    roles = Dict(
        config=True,
        help="""Extra role membership on top of the policy's roles:
        {"steward": {"users": ["dana"], "groups": ["data-stewards"]}}.""",
    )
    steward_roles = List(
        Unicode(),
        default_value=["steward"],
        config=True,
        help="Roles that may query the audit log and see every dataset.",
    )
    principal_source = Enum(
        ["auto", "identity", "os"],
        default_value="auto",
        config=True,
        help="""Whose name goes on decisions and audit records. identity: the server's
        identity provider (the Hub user under JupyterHub); os: the account running the
        server; auto: identity under JupyterHub (JUPYTERHUB_USER set), os otherwise, since a
        plain token-authenticated server only knows an anonymous browser identity.""",
    )

    pseudonym_key_file = Unicode(
        "",
        config=True,
        help="""Key of the 'hash' column rule (keyed, salted pseudonyms; the same value gives
        the same pseudonym for every user, so joins work). Default <audit_dir>/pseudonym.key,
        created 0600 on first use. Kernels receive it to redact; see the threat model.""",
    )
    steward_public_key_file = Unicode(
        "",
        config=True,
        help="""PEM public key of the stewards for the 'encrypt' column rule: kernels encrypt
        with it, only the holders of the private key can reverse. Empty: 'encrypt' reads fail
        with a message saying so.""",
    )

    ner_model = Unicode(
        "",
        config=True,
        help="""spaCy model package for the NER tier of redaction in kernels (PERSON, LOCATION,
        NRP in free text), e.g. "en_core_web_lg" — install the official model in the kernel
        environment; nothing is downloaded at run time. Empty: pattern tier only (emails, phones,
        SSNs, cards, IBANs, IPs, URLs, ...). Passed to kernels at launch.""",
    )

    credential_providers = List(
        Type(klass=SecretSource),
        default_value=[FileSecrets, EnvSecrets, KeyringSecrets],
        config=True,
        help="""Where data-source secrets are looked up, in order: classes of
        jupyter_guard.credentials.SecretSource, each configured by its own traits —
        c.FileSecrets.directory, c.EnvSecrets.prefix, c.KeyringSecrets.backend / file /
        password_env / password_file / service — or an admin's own subclass. The first provider
        holding the secret's name answers; a provider that fails (locked or corrupt keyring file,
        wrong password) stops the lookup with an error naming it — nothing falls through
        silently. A provider whose setting is empty is off.""",
    )
    detector_class = Type(
        default_value="jupyter_guard.redaction.Detector",
        config=True,
        help="""The PII detector of exports, downloads and the save hook on the server (Presidio's
        recognizer registry inside). Built as detector_class(ner_model=ner_model or None): with a
        configured ner_model, server-side export redaction uses the NER tier too.""",
    )

    save_hook = Enum(
        ["off", "flag", "redact"],
        default_value="flag",
        config=True,
        help="""What saving a notebook does (a pre-save hook added beside the admin's own).
        flag: write a display copy of the notebook's sensitivity into metadata.jupyter_guard
        and mark outputs carrying PII in notebooks that read governed data
        (output metadata {"jupyter_guard": {"pii": true}}); redact: also replace those
        outputs by redacted ones in the saved file (the open notebook keeps them until it is
        reloaded); off: nothing.""",
    )
    pii_label = Unicode(
        "confidential",
        config=True,
        help="""The label a notebook counts as when a scan finds PII in its outputs (exports and
        downloads are then decided as for data of that label), even if its kernels read no
        governed data. A label the catalog does not define means its highest label. Empty:
        PII in outputs does not raise a notebook's label (it is still redacted on export).""",
    )
    export_denied_cells = Enum(
        ["refuse", "block"],
        default_value="refuse",
        config=True,
        help="""An export of a notebook that read data whose export policy refuses. refuse: the
        export is refused (403). block: the outputs of the cells that read that data are
        replaced by a placeholder and the rest is exported redacted — outputs derived from that
        data in OTHER cells are only PII-scanned, so choose block knowingly.""",
    )
    audit_events = Enum(
        ["auto", "full", "slim"],
        default_value="auto",
        config=True,
        help="""What each audit record emitted on the server's jupyter_events bus carries. full: the
        whole record (route it to a SIEM); slim: seq, time, event_type and kernel_id only (what
        JupyterLab needs to refresh); auto: slim on a server shared by several users (every event
        subscriber receives every event), full otherwise (a JupyterHub single-user server).""",
    )
    output_filter = Enum(
        ["governed", "all", "off"],
        default_value="governed",
        config=True,
        help="""The PII filter on what kernels send to the browser (streams, results, display data,
        errors), before it reaches the page and the saved notebook. governed: the outputs of a
        kernel that was handed governed data under a redact effect, or that runs without its
        guard; all: every kernel's outputs; off: none (exports are still redacted).""",
    )
    export_scan_sources = Bool(
        True,
        config=True,
        help="""Exports also redact PII written in cell sources (a literal SSN in a filter, an
        e-mail in a comment), and such PII counts toward the notebook's pii_label like PII in
        outputs. False: sources are exported as written (known secrets are masked either way).""",
    )
    export_max_output_bytes = Int(
        10_000_000,
        config=True,
        help="Outputs larger than this (bytes) are replaced by a placeholder on export, never scanned or served.",
    )

    governor: Governor | None = None
    #: a valid edit that removes datasets, held until it has been stable: (fingerprint, governance, since)
    _pending_catalog: tuple | None = None
    _reloader: PeriodicCallback | None = None
    _pseudonym_key: bytes | None = None

    def initialize_settings(self) -> None:
        try:
            governance = self._load_governance()
            audit = self._open_audit_log()
            self.credentials = self._credential_chain()
        except (CatalogError, AuditError, CredentialError) as e:
            self.log.critical("jupyter_guard cannot start, so the server will not either:\n%s", e)
            raise SystemExit(1) from e
        except Exception as e:
            # jupyter_server logs and skips an extension that raises; that would leave governed
            # data ungoverned, so any failure here stops the server.
            self.log.critical("jupyter_guard failed to start, so the server will not either", exc_info=True)
            raise SystemExit(1) from e
        self.governor = Governor(governance, audit, extra_roles=self.roles)
        try:  # copies of governed files made through the server stay governed across restarts
            copies = self.governor.restore_copies()
        except AuditError as e:
            self.log.critical("jupyter_guard cannot read which copies of governed files it made, so the server "
                              "will not start (they would be ungoverned):\n%s", e)
            raise SystemExit(1) from e
        if copies:
            self.log.info("jupyter_guard: %d copies of governed files are governed as their sources", copies)
        try:  # with a central store, stewards see which servers ran with the guard
            self.governor.record_fact_blocking("server_started", user=self.owner_name(), action="server_started",
                                               details=self._server_details())
        except AuditError as e:
            self.log.critical("jupyter_guard cannot record to its audit log, so the server will not start:\n%s", e)
            raise SystemExit(1) from e
        self.steward_reader = StewardReader(audit, processes=self.steward_reader_processes)
        self.serverapp.event_logger.register_event_schema(EVENT_SCHEMA)
        self.governor.on_record.append(self._emit)
        self._wire_kernels()
        self._wire_gates()
        self._fingerprint = catalog_fingerprint(self.catalog_dir) if self.catalog_dir else ()
        self.loaded_at = _now()
        self.last_catalog_error: str | None = None
        self.settings.update(jupyter_guard=self)
        self.log.info(
            "jupyter_guard %s: %d datasets and %d sources from %s, audit in %s, credentials from %s",
            __version__,
            len(governance.catalog.datasets),
            len(governance.catalog.sources),
            self.catalog_dir or "(no catalog)",
            audit.store.describe(),
            ", ".join(self.credentials.names()) or "no provider",
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        await super()._start_jupyter_server_extension(serverapp)
        if self.catalog_dir and self.catalog_reload_interval > 0:
            self._reloader = PeriodicCallback(self.check_catalog, self.catalog_reload_interval * 1000)
            self._reloader.start()

    async def stop_extension(self) -> None:
        if self._reloader is not None:
            self._reloader.stop()
        if self.governor is not None:  # None when start-up was refused
            self.steward_reader.close()
            await self.record_server_event("server_stopped")
            await asyncio.get_running_loop().run_in_executor(None, self.governor.audit.close)

    def _server_details(self) -> dict:
        import platform

        return {"version": __version__, "host": platform.node(), "pid": os.getpid(),
                "base_url": self.serverapp.base_url, "hub": bool(os.environ.get("JUPYTERHUB_USER")),
                "guard_loaded": True, "catalog_dir": self.catalog_dir or None,
                "datasets": len(self.governor.catalog.datasets)}

    async def record_server_event(self, event_type: str) -> None:
        """``server_started`` / ``server_stopped``: with a central store, stewards see which servers
        ran with the guard (a server without it leaves no ``server_started``)."""
        try:
            await self.governor.record_fact(event_type, user=self.owner_name(), action=event_type,
                                            details=self._server_details(), refusal=f"{event_type} was not recorded")
        except Exception:  # noqa: BLE001 - a stop must finish; a start's failure is logged
            self.log.exception("jupyter_guard: could not record %s", event_type)

    # -- catalog ---------------------------------------------------------------------------

    @property
    def root_dir(self) -> str:
        return os.path.abspath(os.path.expanduser(self.serverapp.root_dir))

    def _load_governance(self) -> Governance:
        if not self.catalog_dir:
            self.log.warning("jupyter_guard: no GuardApp.catalog_dir configured; no data is governed")
            return empty_governance(self.root_dir)
        return load_governance(self.catalog_dir, self.root_dir, allow_empty=self.allow_empty_catalog)

    async def check_catalog(self) -> None:
        """Reload an edited catalog; an invalid edit keeps the last valid one and says where.

        An empty, missing or unreadable file is an invalid edit (what an editor's truncate-then-write
        or a checkout's delete-then-create leaves for a moment). A valid catalog that drops datasets
        or sources takes effect only once it has stayed unchanged for catalog_removal_delay
        seconds; one that only adds or changes entries takes effect at once. Every change of what
        is in force is recorded (event catalog_reload) with the names added and removed.
        """
        fingerprint = catalog_fingerprint(self.catalog_dir)
        pending = self._pending_catalog
        if pending is not None and fingerprint == pending[0]:
            if time.monotonic() - pending[2] >= self.catalog_removal_delay:
                self._pending_catalog = None
                await self._apply_catalog(pending[1])
            return
        if fingerprint == self._fingerprint:
            return
        self._fingerprint, self._pending_catalog = fingerprint, None
        try:
            # parsing a large catalog takes seconds: keep it off the event loop
            governance = await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(load_governance, self.catalog_dir, self.root_dir,
                                        allow_empty=self.allow_empty_catalog))
        except Exception as e:  # CatalogError, or anything unexpected: keep what is in force
            problems = [str(p) for p in e.problems] if isinstance(e, CatalogError) else [repr(e)]
            self.log.error(
                "jupyter_guard: catalog edit rejected, still using the last valid catalog:\n%s",
                "\n".join(problems),
                exc_info=not isinstance(e, CatalogError),
            )
            self.last_catalog_error = str(e)
            await self._record_reload(decision="error", reasons=tuple(problems[:50]))
            return
        self.last_catalog_error = None
        _, removed = _changes(self.governor.catalog, governance.catalog)
        if removed and self.catalog_removal_delay > 0:
            self._pending_catalog = (fingerprint, governance, time.monotonic())
            self.log.warning("jupyter_guard: the catalog edit removes %s; it takes effect if unchanged for %.0f s",
                             ", ".join(removed), self.catalog_removal_delay)
            return
        await self._apply_catalog(governance)

    async def _apply_catalog(self, governance: Governance) -> None:
        added, removed = _changes(self.governor.catalog, governance.catalog)
        self.governor.swap(governance)
        self.loaded_at = _now()
        self.log.info("jupyter_guard: catalog reloaded, %d datasets", len(governance.catalog.datasets))
        await self._record_reload(decision="allow", details={**governance.catalog.summary(), "added": added,
                                                             "removed": removed})

    async def _record_reload(self, **fact) -> None:
        try:
            await self.governor.record_fact("catalog_reload", user=None, target=self.catalog_dir,
                                            refusal="the catalog reload was not recorded", **fact)
        except GovernanceRefusal as e:
            self.log.error("jupyter_guard: could not record the catalog reload: %s", e)

    # -- credentials -----------------------------------------------------------------------

    def _credential_chain(self) -> CredentialChain:
        """The provider chain; a provider that cannot be used yet is logged, not fatal.

        Unknown provider names and backend classes that do not load stop the server (typos);
        a keyring file that is locked or missing its password fails each lookup with a
        message naming it, and works once fixed, without a restart.
        """
        sources = [cls(parent=self) for cls in self.credential_providers]
        chain = CredentialChain.from_sources(sources)
        for source in sources:
            if isinstance(source, FileSecrets) and source.directory and not os.path.isdir(source.directory):
                self.log.warning("jupyter_guard: FileSecrets.directory %s does not exist (no secrets from files)",
                                 source.directory)
        for provider in chain.providers:
            try:
                provider.list_names()
            except CredentialError as e:
                self.log.error("jupyter_guard: credential provider not usable yet (lookups through it will fail): %s", e)
        return chain

    # -- kernels ---------------------------------------------------------------------------

    def _wire_kernels(self) -> None:
        """Bind and guard the kernels this server starts; observe their executions."""
        self.kernel_bindings = KernelBindings()
        from ..export import ScanCache

        self.output_scans = ScanCache(self.detector_class(ner_model=self.ner_model or None), max_chars=8_000_000)
        self.cells = CellTracker(self)
        install_identity(self)
        install_kernel_launch(self)
        self._keep_secrets_out_of_kernels()
        base = self.settings.get("kernel_websocket_connection_class") or ZMQChannelsWebsocketConnection
        self.settings["kernel_websocket_connection_class"] = observing_connection_class(base, self.cells)

    def _wire_gates(self) -> None:
        """Exports, downloads and data-file reads are decided by policy (see jupyter_guard.server.gates):
        the configured authorizer is wrapped, never replaced; the save hook sits beside others."""
        settings = ExportSettings(pii_label=self.pii_label or None, denied_cells=self.export_denied_cells,
                                  max_output_bytes=self.export_max_output_bytes,
                                  scan_sources=self.export_scan_sources)
        detector = self.detector_class(ner_model=self.ner_model or None)
        self.gates = install_gates(self, NotebookExports(self.governor, settings, detector=detector))
        self.serverapp.contents_manager.register_pre_save_hook(save_hook(self.gates))

    def _keep_secrets_out_of_kernels(self) -> None:
        """Kernels inherit the server's environment: drop the variables that hold secrets."""
        km = self.serverapp.kernel_manager
        original = km.start_kernel

        async def start_kernel(*args, **kwargs):
            env = dict(kwargs.get("env") or os.environ)
            drop = self.credentials.secret_variables(env)
            if drop:
                for name in drop:
                    del env[name]
                kwargs["env"] = env
            return await original(*args, **kwargs)

        km.start_kernel = start_kernel

    @property
    def kernel_api_url(self) -> str:
        """Where kernels reach the guard: loopback when the server listens on all addresses."""
        app = self.serverapp
        if app.sock:
            self.log.warning("jupyter_guard: kernels cannot reach a server on a unix socket; governed reads will fail closed")
            return ""
        scheme = "https" if app.certfile else "http"
        host = app.ip if app.ip not in ("", "0.0.0.0", "*", "::") else "127.0.0.1"  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{app.port}{app.base_url.rstrip('/')}/jupyter-guard/api/kernel"

    def owner_name(self) -> str:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    def known_purposes(self) -> list[str]:
        found = {p for ds in self.governor.catalog.datasets.values() for p in ds.purposes}
        for rule in self.governor.policy.rules:
            found.update(rule.purposes)
        return sorted(found)

    def redaction_keys(self) -> dict:
        """The pseudonym key (created on first use) and the stewards' public key, for kernels."""
        if self._pseudonym_key is None:
            path = self.pseudonym_key_file or os.path.join(self.audit_dir, "pseudonym.key")
            self._pseudonym_key = load_key_file(path, what="pseudonym key", create=True)
        public = ""
        if self.steward_public_key_file:
            with open(self.steward_public_key_file, encoding="ascii") as f:
                public = f.read()
        return {"pseudonym_key": self._pseudonym_key.hex(), "public_key_pem": public or None}

    # -- audit -----------------------------------------------------------------------------

    def _open_audit_log(self) -> AuditLog:
        os.makedirs(self.audit_dir, mode=0o700, exist_ok=True)
        kwargs = {}
        if issubclass(self.audit_store_class, SQLiteAuditStore) and not self._configured("SQLiteAuditStore", "path"):
            kwargs["path"] = default_audit_db(self.audit_dir)
        store = self.audit_store_class(parent=self, log=self.log, **kwargs)
        has_records = store.tail() is not None
        if self.audit_key_keyring_backend:
            provider = KeyringProvider(backend=self.audit_key_keyring_backend)
            key = load_audit_key(key_file=None, provider=provider, key_name=self.audit_key_name, create=not has_records)
        else:
            key_file = self.audit_key_file or default_key_file(self.audit_dir)
            key = load_audit_key(key_file=key_file, provider=None, key_name=self.audit_key_name, create=not has_records)
        audit = AuditLog(store, key)
        audit.check_key()
        return audit

    def _configured(self, section: str, trait: str) -> bool:
        return trait in self.config.get(section, {}) or trait in self.serverapp.config.get(section, {})

    def _emit(self, record) -> None:
        """Route a stored record through the server's jupyter_events logger (slim: only what the
        UI needs to refresh, when every event subscriber of a shared server would receive it)."""
        data = record.to_dict()
        if self.audit_events == "slim" or (self.audit_events == "auto" and self.shared_server):
            data = {k: data[k] for k in SLIM_EVENT if k in data}
        self.serverapp.event_logger.emit(schema_id=EVENT_SCHEMA_ID, data=data)

    # -- who is asking ---------------------------------------------------------------------

    def principal_for(self, user) -> Principal:
        """The policy principal for an authenticated jupyter_server user."""
        source = self.principal_source
        if source == "auto":
            source = "identity" if os.environ.get("JUPYTERHUB_USER") else "os"
        hub_user = getattr(user, "hub_user", None) or {}
        groups = hub_user.get("groups") or getattr(user, "groups", None) or ()
        name = user.username if source == "identity" else getpass.getuser()
        return self.governor.principal(name, groups)

    @property
    def shared_server(self) -> bool:
        """One server for several users (names from an identity provider, not a JupyterHub
        single-user server): kernels, their channels and audit events are confined to their users."""
        return self.principal_source == "identity" and not os.environ.get("JUPYTERHUB_USER")

    def is_steward(self, principal) -> bool:
        return bool(set(self.steward_roles) & set(principal.roles))

    def discoverer(self, who: Principal, policy: Policy | None = None):
        """Whether ``who`` may know a dataset exists (memoised; see governor.discoverer)."""
        return discoverer(policy or self.governor.policy, who, steward=self.is_steward(who))

    def kernel_principal(self, binding) -> Principal:
        """Whom a kernel acts for (the server owner for a kernel started outside any request)."""
        return self.principal_for(binding.user or kernel_owner(self))

    def acts_for(self, binding, who: Principal) -> bool:
        """Whether the kernel of ``binding`` acts for ``who`` (its governance and purpose are theirs)."""
        return self.kernel_principal(binding).user == who.user

    async def kernel_governance(self, binding) -> dict:
        """A kernel's governance for the notebook indicator (IKernelGovernance)."""
        catalog = self.governor.catalog

        def color_of(name: str) -> str:
            label = catalog.label(name)
            return label.color if label else ""

        notebook = await self.cells.notebook(binding.kernel_id, binding)
        return binding.governance(notebook=notebook, purposes=self.known_purposes(), color_of=color_of)


def _changes(old, new) -> tuple[list[str], list[str]]:
    """(names added, names removed) of datasets and sources between two catalogs."""
    before = set(old.datasets) | {f"source:{n}" for n in old.sources}
    after = set(new.datasets) | {f"source:{n}" for n in new.sources}
    return sorted(after - before), sorted(before - after)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
