"""GuardApp: the jupyter_server extension that wires catalog, policy and audit into a server.

Heavy things are built in `initialize_settings`; the catalog reload task starts in
`_start_jupyter_server_extension` (the event loop is running then); `stop_extension`
drains the audit log. Misconfiguration stops the server: an extension that failed to load
would otherwise leave governed data ungoverned.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Enum, Float, Int, Type, Unicode, default

from .._version import __version__
from ..audit.readers import StewardReader
from ..errors import AuditError, CatalogError, CredentialError
from ..export.governance import ExportSettings, NotebookExports
from ..broker import Tickets
from ..governor import Governor, catalog_fingerprint, discoverer
from ..policy import Policy, Principal
from ..service import protocol
from ..service.client import ServiceClient, ServiceGovernor
from ..settings import GuardSettings, now
from .bindings import KernelBindings, install_identity, install_kernel_launch, kernel_owner
from .gates import install_gates, save_hook
from .handlers import default_handlers
from .observer import CellTracker, observing_connection_class

#: variables of the server's environment that only the server may use with the guard service
SERVICE_SECRETS = ("JUPYTER_GUARD_SERVICE_TOKEN",)
EVENT_SCHEMA_ID = "https://events.jupyter.org/jupyter_guard/audit/v1"
#: what a slim audit event carries: enough for the UI to know what to refresh, nothing about the work
SLIM_EVENT = ("seq", "time", "event_type", "kernel_id")
EVENT_SCHEMA = Path(__file__).parent.parent / "event_schemas" / "audit" / "v1.yaml"


class GuardApp(ExtensionApp, GuardSettings):
    name = "jupyter_guard"
    description = "Data governance for Jupyter: catalog labels, policy, redaction and an audit log."

    steward_reader_processes = Bool(
        True,
        help="Run stewards' audit queries, exports and verification in reader processes of their own "
             "(lower CPU priority, own read-only connection), so governed reads keep their latency while "
             "stewards work. False: threads of the server's process (stores without a reader fall back to those).",
    ).tag(config=True)
    principal_source = Enum(
        ["auto", "identity", "os"],
        default_value="auto",
        config=True,
        help="""Whose name goes on decisions and audit records. identity: the server's
        identity provider (the Hub user under JupyterHub); os: the account running the
        server; auto: identity under JupyterHub (JUPYTERHUB_USER set), os otherwise, since a
        plain token-authenticated server only knows an anonymous browser identity.""",
    )

    ner_model = Unicode(
        "",
        config=True,
        help="""spaCy model package for the NER tier of redaction in kernels (PERSON, LOCATION,
        NRP in free text), e.g. "en_core_web_lg" — install the official model in the kernel
        environment; nothing is downloaded at run time. Empty: pattern tier only (emails, phones,
        SSNs, cards, IBANs, IPs, URLs, ...). Passed to kernels at launch.""",
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
    service_url = Unicode(
        config=True,
        help="""The guard service (``jupyter guard service``) that decides, records and holds the keys,
        e.g. http://127.0.0.1:8765/services/jupyter-guard/ under JupyterHub. Set: this server keeps
        no audit store, audit key, pseudonym key or secrets; every decision and record goes to the
        service with service_token, and governed requests fail closed while it cannot be reached.
        Default: $JUPYTER_GUARD_SERVICE_URL. Empty: decide and record in this server (one machine).""",
    )
    service_token = Unicode(
        config=True,
        help="""The token this server calls the guard service with. Default: $JUPYTER_GUARD_SERVICE_TOKEN,
        else the server's own Hub token ($JUPYTERHUB_API_TOKEN), which identifies its owner to the Hub.""",
    )
    service_timeout = Float(10.0, config=True, help="Seconds to wait for the guard service before failing closed.")

    @default("service_url")
    def _default_service_url(self):
        return os.environ.get("JUPYTER_GUARD_SERVICE_URL", "")

    @default("service_token")
    def _default_service_token(self):
        return os.environ.get("JUPYTER_GUARD_SERVICE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN", "")

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
    tickets: Tickets | None = None  # brokered reads served here (no guard service)
    _reloader: PeriodicCallback | None = None

    def initialize_settings(self) -> None:
        try:
            governance = self._load_governance()
            if self.service_url:  # the guard service decides and records; nothing of it is kept here
                client = ServiceClient(self.service_url, self.service_token, timeout=self.service_timeout)
                self.governor = ServiceGovernor(governance, client, extra_roles=self.roles)
                self._service_keys = self.governor.redaction_keys()
                audit = self.governor.audit
            else:
                audit = self.open_audit_log()
                self.governor = Governor(governance, audit, extra_roles=self.roles)
                # without a service this server reads the datasets marked access: brokered itself
                self.tickets = self.governor.tickets = Tickets()
            self.credentials = self.credential_chain()
        except (CatalogError, AuditError, CredentialError, ValueError) as e:
            self.log.critical("jupyter_guard cannot start, so the server will not either:\n%s", e)
            raise SystemExit(1) from e
        except Exception as e:
            # jupyter_server logs and skips an extension that raises; that would leave governed
            # data ungoverned, so any failure here stops the server.
            self.log.critical("jupyter_guard failed to start, so the server will not either", exc_info=True)
            raise SystemExit(1) from e
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
        self.loaded_at = now()
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

    # -- credentials -----------------------------------------------------------------------

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
            drop = [*self.credentials.secret_variables(env), *(n for n in SERVICE_SECRETS if n in env)]
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

    @property
    def broker_url(self) -> str:
        """Where kernels send brokered reads: the guard service's read route (the ticket is the
        grant), else this server's kernel route."""
        if self.service_url:
            return self.service_url.rstrip("/") + "/" + protocol.API + "read"
        api = self.kernel_api_url
        return api + "/read" if api else ""

    _service_keys: dict | None = None

    def redaction_keys(self) -> dict:
        """The keys of column rules for kernels: the guard service's (one pseudonym key for the
        whole deployment) when there is one, else this server's."""
        return self._service_keys if self._service_keys is not None else super().redaction_keys()

    @property
    def service(self) -> ServiceGovernor | None:
        return self.governor if isinstance(self.governor, ServiceGovernor) else None

    def owner_name(self) -> str:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    def known_purposes(self) -> list[str]:
        found = {p for ds in self.governor.catalog.datasets.values() for p in ds.purposes}
        for rule in self.governor.policy.rules:
            found.update(rule.purposes)
        return sorted(found)

    # -- audit -----------------------------------------------------------------------------

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
