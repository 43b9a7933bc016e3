"""What the single-user extension and the guard service are configured with alike.

``GuardSettings`` holds the traits of the catalog, the audit store and its key, roles, the
redaction keys and the credential providers, and the code that opens them. ``GuardApp`` (the
server extension) and ``GuardService`` (``jupyter guard service``) both inherit it, so a
deployment writes ``c.GuardApp.<trait>`` for servers, ``c.GuardService.<trait>`` for the
service, or ``c.GuardSettings.<trait>`` once for both. Imports no web framework.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from datetime import datetime, timezone

from traitlets import Bool, Dict, Float, List, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from .audit import AuditLog, AuditStore, SQLiteAuditStore
from .credentials import (
    CredentialChain,
    EnvSecrets,
    FileSecrets,
    KeyringProvider,
    KeyringSecrets,
    SecretSource,
    load_audit_key,
    load_key_file,
)
from .errors import CatalogError, CredentialError, GovernanceRefusal
from .governor import Governance, catalog_fingerprint, empty_governance, load_governance
from .paths import default_audit_db, default_audit_dir, default_key_file


class GuardSettings(LoggingConfigurable):
    """Catalog, audit, keys, roles and credentials: the settings of whoever decides and records."""

    catalog_dir = Unicode(
        "",
        config=True,
        help="""Directory of catalog and policy YAML files (labels, datasets, roles, rules).
        Relative dataset locations in it are relative to the server's root_dir. Empty: no
        catalog, nothing is governed (a warning is logged). A configured directory that is
        missing or invalid stops the server.""",
    )
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
    governor = None  # the Governor, once built
    _pseudonym_key: bytes | None = None
    #: a valid edit that removes datasets, held until it has been stable: (fingerprint, governance, since)
    _pending_catalog: tuple | None = None

    def credential_chain(self) -> CredentialChain:
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

    _broker_redactor = None

    def broker_redactor(self):
        """The Redactor of the reads this process brokers, with the deployment's keys (built on
        first use: Presidio is heavy). Same detector and model as kernels use, so both paths agree."""
        if self._broker_redactor is None:
            from .redaction import Detector, Redactor

            keys = GuardSettings.redaction_keys(self)  # this process's own keys, never a remote's
            pem = keys.get("public_key_pem")
            detector = getattr(self, "detector_class", Detector)
            self._broker_redactor = Redactor(detector(ner_model=getattr(self, "ner_model", "") or None),
                                             pseudonym_key=bytes.fromhex(keys["pseudonym_key"]),
                                             public_key_pem=pem.encode() if pem else None)
        return self._broker_redactor

    def source_url(self, name: str) -> str:
        """A data source's SQLAlchemy URL with its secret, for the SQL reads this process brokers
        (the secret is looked up now, as for a credential hand-out; it never leaves the process)."""
        from .sources import resolve_source

        return resolve_source(self.governor.catalog.sources[name], self.credentials).url

    def open_audit_log(self) -> AuditLog:
        """The audit log of the configured store, its key checked against the records (a wrong
        key is refused before anything is appended)."""
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
        server_config = getattr(getattr(self, "serverapp", None), "config", None) or {}
        return trait in self.config.get(section, {}) or trait in server_config.get(section, {})

    def is_steward(self, principal) -> bool:
        return bool(set(self.steward_roles) & set(principal.roles))

    # -- catalog ---------------------------------------------------------------------------

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
        self.loaded_at = now()
        self.log.info("jupyter_guard: catalog reloaded, %d datasets", len(governance.catalog.datasets))
        await self._record_reload(decision="allow", details={**governance.catalog.summary(), "added": added,
                                                             "removed": removed})

    async def _record_reload(self, **fact) -> None:
        try:
            await self.governor.record_fact("catalog_reload", user=None, target=self.catalog_dir,
                                            refusal="the catalog reload was not recorded", **fact)
        except GovernanceRefusal as e:
            self.log.error("jupyter_guard: could not record the catalog reload: %s", e)


def _changes(old, new) -> tuple[list[str], list[str]]:
    """(names added, names removed) of datasets and sources between two catalogs."""
    before = set(old.datasets) | {f"source:{n}" for n in old.sources}
    after = set(new.datasets) | {f"source:{n}" for n in new.sources}
    return sorted(after - before), sorted(before - after)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
