"""``jupyter guard service``: the guard service, where what users must not reach is kept.

A long-running tornado process under its own OS identity that holds the catalog, the policy,
the audit store and its key, the pseudonym key and the credential providers, and answers
single-user servers (their clients) over HTTP: decisions, audit appends and queries,
credentials, keys. Under JupyterHub it is a Hub-managed service and identifies every caller
with the Hub; on a shared machine without a Hub it runs under systemd with its own tokens.

Configured like the extension (``GuardSettings``: ``c.GuardService.<trait>`` or
``c.GuardSettings.<trait>`` for both), from ``--config FILE``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.process import fork_processes, task_id
from traitlets import Bool, Enum, Float, Int, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..audit import AuditEvent, AuditQuery
from ..audit.model import EVENT_FIELDS
from ..audit.readers import StewardReader
from ..broker import Tickets
from ..errors import AuditError, CatalogError, CredentialError
from ..governor import Governor
from ..settings import GuardSettings
from .handlers import handlers
from .identity import HubIdentity, TokenIdentity


class GuardService(Application, GuardSettings):
    name = "jupyter-guard-service"
    description = "The jupyter_guard service: decides, records and holds the keys, outside users' reach."
    version = __version__

    aliases = {
        "config": "GuardService.config_file",
        "ip": "GuardService.ip",
        "port": "GuardService.port",
        "processes": "GuardService.processes",
        "catalog-dir": "GuardSettings.catalog_dir",
        "log-level": "Application.log_level",
    }

    config_file = Unicode("", config=True, help="The service's traitlets config file (Python).")
    ip = Unicode(config=True, help="Address to listen on. Default: the host of JUPYTERHUB_SERVICE_URL, or 127.0.0.1.")
    port = Int(config=True, help="Port to listen on. Default: the port of JUPYTERHUB_SERVICE_URL, or 8765.")
    base_url = Unicode(config=True, help="URL prefix of the API. Default: JUPYTERHUB_SERVICE_PREFIX, or /.")
    root_dir = Unicode(config=True, help="""Directory that relative dataset locations of the catalog are
        relative to (under JupyterHub prefer absolute locations: each user's server has its own root).""")
    processes = Int(1, config=True, help="""Service processes sharing the port (SO_REUSEPORT-style, tornado's
        fork_processes). More than one needs a store for many writers (PostgresAuditStore).""")
    auth = Enum(["auto", "hub", "token"], default_value="auto", config=True, help="""Who calls: hub (identity
        and groups from JupyterHub), token (c.GuardService.tokens_file, groups from the OS), auto: hub when
        JUPYTERHUB_API_TOKEN is set.""")
    service_name = Unicode(config=True, help="The Hub service name callers need access:services to. "
                           "Default: JUPYTERHUB_SERVICE_NAME, or jupyter-guard.")
    tokens_file = Unicode("", config=True, help="Without a Hub: the file of issued tokens (SHA-256 -> user), 0600.")
    identity_ttl = Float(60.0, config=True, help="""Seconds a caller's identity and groups are cached at most:
        taking a user out of a group reaches their decisions (tokens and running kernels alike) within it.""")
    server_check_interval = Float(30.0, config=True, help="""Under JupyterHub: seconds between checks of the
        Hub's running servers; one that has not said server_started within server_grace is recorded as
        running without the guard (0: off).""")
    server_grace = Float(60.0, config=True, help="Seconds a new server has to record server_started.")
    ner_model = Unicode("", config=True, help="""spaCy model package of the NER tier for brokered reads'
        free-text columns (as c.GuardApp.ner_model for in-kernel reads; use the same, so both paths
        redact alike). Empty: pattern tier only.""")
    kernel_keys = Bool(True, config=True, help="""Hand the deployment's pseudonym key (and the stewards'
        public key) to kernels, for the column rules of datasets they read directly. False once every
        dataset with hash rules is brokered: the keys then never leave the service, and an in-kernel
        hash rule fails closed saying so.""")
    ticket_ttl = Float(60.0, config=True, help="""Seconds a brokered read's ticket (handed out with the
        decision) stays valid; each ticket allows one read.""")

    @default("ip")
    def _default_ip(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _default_port(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or 8765

    @default("base_url")
    def _default_base_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"

    @default("root_dir")
    def _default_root_dir(self):
        return os.getcwd()

    @default("service_name")
    def _default_service_name(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "jupyter-guard"

    #: servers' last server_started record per user (to spot a server that runs without the guard)
    last_started: dict

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            if not os.access(self.config_file, os.R_OK):
                self.log.critical("jupyter_guard service cannot start: cannot read its config file %s (%s)",
                                  self.config_file, "missing" if not os.path.exists(self.config_file)
                                  else "permission denied")
                raise SystemExit(1)
            self.load_config_file(self.config_file)

    # -- start and stop ------------------------------------------------------------------------

    def start(self):
        sockets = bind_sockets(self.port, self.ip)
        self.tickets = Tickets(ttl=self.ticket_ttl)  # before forking: every worker redeems every worker's tickets
        self._parent = None
        if self.processes > 1:
            parent = os.getpid()
            fork_processes(self.processes, max_restarts=100)  # each child has its own connections
            self._parent = parent  # only the children get here: they stop when the parent is gone
        asyncio.run(self.serve(sockets))

    def setup(self) -> None:
        """Catalog, audit log, credentials, identity; a failure stops the service with why."""
        try:
            governance = self._load_governance()
            audit = self.open_audit_log()
            self.credentials = self.credential_chain()
            self.identity = self._identity()
            self.redaction_keys()  # the deployment's pseudonym key exists before the first kernel asks
        except (CatalogError, AuditError, CredentialError, ValueError, OSError) as e:
            self.log.critical("jupyter_guard service cannot start:\n%s", e)
            raise SystemExit(1) from e
        self.governor = Governor(governance, audit, extra_roles=self.roles)
        if getattr(self, "tickets", None) is None:
            self.tickets = Tickets(ttl=self.ticket_ttl)
        self.governor.tickets = self.tickets  # the service reads brokered datasets itself
        self.governor.brokers_by_label = True
        self.governor.restore_copies()
        self.steward_reader = StewardReader(audit, processes=False)
        self.last_started = self._servers_started()
        self._fingerprint = ()
        if self.catalog_dir:
            from ..governor import catalog_fingerprint

            self._fingerprint = catalog_fingerprint(self.catalog_dir)
        self._flagged: set = set()

    def _identity(self):
        mode = self.auth
        if mode == "auto":
            mode = "hub" if os.environ.get("JUPYTERHUB_API_TOKEN") else "token"
        if mode == "hub":
            return HubIdentity(ttl=self.identity_ttl, service_name=self.service_name)
        return TokenIdentity(self.tokens_file, ttl=self.identity_ttl)

    def make_app(self) -> web.Application:
        return web.Application(handlers(self.base_url), guard_service=self)

    async def serve(self, sockets) -> None:
        self.setup()
        server = HTTPServer(self.make_app(), xheaders=True)
        server.add_sockets(sockets)
        timers = []
        if self.catalog_dir and self.catalog_reload_interval > 0:
            timers.append(PeriodicCallback(self.check_catalog, self.catalog_reload_interval * 1000))
        if isinstance(self.identity, HubIdentity) and self.server_check_interval > 0 and (task_id() or 0) == 0:
            timers.append(PeriodicCallback(self.check_servers, self.server_check_interval * 1000))
        for timer in timers:
            timer.start()
        await self._record_self("service_started")
        self.log.info("jupyter_guard service %s on %s:%d%s (process %s): %d datasets, audit in %s, callers from %s",
                      __version__, self.ip, self.port, self.base_url, task_id() or 0,
                      len(self.governor.catalog.datasets), self.governor.audit.store.describe(),
                      self.identity.describe())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if getattr(self, "_parent", None):
            # SIGTERM to the service (the Hub's, a plain kill) reaches only the forking parent:
            # a worker whose parent is gone stops too, instead of serving on as an orphan
            orphan = PeriodicCallback(lambda: os.getppid() != self._parent and stop.set(), 1000)
            orphan.start()
            timers.append(orphan)
        await stop.wait()
        for timer in timers:
            timer.stop()
        server.stop()
        await self._record_self("service_stopped")
        self.steward_reader.close()
        await loop.run_in_executor(None, self.governor.audit.close)

    async def _record_self(self, event_type: str) -> None:
        import platform

        try:
            await self.governor.record_fact(event_type, user=None, action=event_type, refusal=f"{event_type} not recorded",
                                            details={"version": __version__, "host": platform.node(),
                                                     "pid": os.getpid(), "process": task_id() or 0})
        except Exception:  # noqa: BLE001 - a start or stop goes on; the log says why
            self.log.exception("jupyter_guard service: could not record %s", event_type)

    # -- recording for callers -----------------------------------------------------------------

    async def record(self, event: AuditEvent):
        """Store a caller's fact durably (masked); Unrecorded when it cannot. A lineage record
        governs its file here too, so the service decides reads of derived files."""
        fields = {k: getattr(event, k) for k in EVENT_FIELDS if k not in ("event_type", "user", "action")}
        rec = await self.governor.record_fact(event.event_type, user=event.user, action=event.action,
                                              refusal=f"the {event.event_type} was not recorded", **fields)
        if event.event_type == "lineage":
            self.governor.apply_lineage(rec.event)
        elif event.event_type == "server_started" and event.user:
            self.last_started[event.user] = rec.time
        return rec

    def _servers_started(self) -> dict:
        since = datetime.now(timezone.utc) - timedelta(days=7)
        out = {}
        for rec in self.governor.audit.query(AuditQuery(event_type="server_started", since=since, limit=None)):
            if rec.event.user:
                out[rec.event.user] = rec.time
        return out

    async def check_servers(self) -> None:
        """Record every running server that never said server_started: it runs without the guard."""
        try:
            servers = await self.identity.servers()
        except Exception as e:  # noqa: BLE001 - the next round tries again
            self.log.warning("jupyter_guard service: cannot list the Hub's servers: %s", e)
            return
        now = datetime.now(timezone.utc)
        for s in servers:
            started = _parse(s.get("started"))
            key = (s["user"], s["name"], s.get("started"))
            if started is None or key in self._flagged or (now - started).total_seconds() < self.server_grace:
                continue
            said = _parse(self.last_started.get(s["user"]))
            if said is not None and said >= started - timedelta(seconds=5):
                continue
            self._flagged.add(key)
            try:
                await self.governor.record_fact(
                    "server_started", user=s["user"], action="server_started", decision="unguarded",
                    reasons=("the Hub runs this server, and it never recorded server_started: it runs without "
                             "the jupyter_guard extension",),
                    details={"guard_loaded": False, "observed_by": "guard service", "server": s["name"],
                             "started": s.get("started"), "url": s.get("url")},
                    refusal="the unguarded server was not recorded")
                self.log.warning("jupyter_guard service: %s's server %s runs without the guard", s["user"], s["url"])
            except Exception:  # noqa: BLE001
                self._flagged.discard(key)
                self.log.exception("jupyter_guard service: could not record an unguarded server")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def main(argv=None) -> None:
    GuardService.launch_instance(argv)


if __name__ == "__main__":
    main()
