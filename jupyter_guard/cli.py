"""`jupyter guard ...`: catalog validation, audit verify/query/export, credentials, and the demo.

Uses the same core as the server (no server needed). Exit codes: 0 ok, 1 a finding (invalid
catalog, broken chain), 2 a usage or environment error (missing key, unreadable store).
"""

from __future__ import annotations

import argparse
import getpass
import contextlib
import json
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import AuditError, CatalogError, CredentialError

QUERY_FIELDS = ("user", "dataset", "label", "decision", "notebook", "event_type", "action")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["service"]:  # traitlets arguments (--config F, --GuardService.x=...) are the service's own
        return cmd_service(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (AuditError, CredentialError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `jupyter guard audit query | head`
        return 0


def build_parser() -> argparse.ArgumentParser:
    from .paths import default_audit_dir

    p = argparse.ArgumentParser(prog="jupyter guard", description="Data governance for Jupyter.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    cat = sub.add_parser("catalog", help="validate or start a catalog directory")
    catsub = cat.add_subparsers(title="catalog commands", metavar="COMMAND")
    v = catsub.add_parser("validate", help="check a catalog directory; every problem with file:line")
    v.add_argument("path", help="catalog directory")
    v.add_argument("--root", default=None, help="server root_dir for relative locations (default: cwd)")
    v.add_argument("--check-access", action="store_true",
                   help="also report brokered datasets' files that an account other than the guard service's can "
                        "read (owner, mode bits, POSIX ACLs); brokered: access: brokered, or of the policy's "
                        "brokered labels (as under a guard service)")
    v.add_argument("--service-user", default=None, metavar="USER",
                   help="the guard service's OS account for --check-access (default: the current user)")
    v.set_defaults(func=cmd_catalog_validate)
    init = catsub.add_parser("init", help="write the default policy and an example dataset")
    init.add_argument("path", help="new catalog directory")
    init.set_defaults(func=cmd_catalog_init)

    audit = sub.add_parser("audit", help="verify, query and export the audit log")
    asub = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, metavar="FILE",
                        help="the server's traitlets config file (e.g. jupyter_server_config.py): the store from "
                             "c.GuardApp.audit_store_class and its section, the key from c.GuardApp.audit_key_*; "
                             "the flags below override it")
    common.add_argument("--store-class", default=None,
                        help="as c.GuardApp.audit_store_class, e.g. jupyter_guard.audit.postgres.PostgresAuditStore")
    common.add_argument("--dsn", default=None, help="as c.PostgresAuditStore.dsn (prefer --config, a password file or "
                        "the PG* environment variables for a password)")
    common.add_argument("--audit-dir", default=None, help=f"as c.GuardApp.audit_dir (default: {default_audit_dir()})")
    common.add_argument("--db", default=None, help="SQLite audit database (default: <audit-dir>/audit.sqlite)")
    common.add_argument("--key-file", default=None, help="audit key file (default: <audit-dir>/audit.key)")
    common.add_argument("--keyring-backend", default=None, help="as c.GuardApp.audit_key_keyring_backend")
    common.add_argument("--key-name", default=None, help="as c.GuardApp.audit_key_name (default: audit-key)")
    filters = argparse.ArgumentParser(add_help=False)
    for name in QUERY_FIELDS:
        filters.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)
    filters.add_argument("--since", default=None, help="ISO time, e.g. 2026-11-01 or 2026-11-01T09:00:00Z")
    filters.add_argument("--until", default=None, help="ISO time (exclusive)")

    ver = asub.add_parser("verify", parents=[common], help="check the hash chain; exit 1 naming the first bad record")
    ver.set_defaults(func=cmd_audit_verify)
    q = asub.add_parser("query", parents=[common, filters], help="find records")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(func=cmd_audit_query)
    ex = asub.add_parser("export", parents=[common, filters], help="export records for compliance")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("-o", "--output", default="-", help="file (default: stdout)")
    ex.set_defaults(func=cmd_audit_export)
    imp = asub.add_parser("import", parents=[common],
                          help="append a verified (per-user) SQLite log to the target log, re-sealed under its key")
    imp.add_argument("--from-db", required=True, metavar="OLD.sqlite", help="the SQLite audit database to import")
    imp.add_argument("--from-key-file", required=True, metavar="OLD.key", help="the key that wrote it")
    imp.set_defaults(func=cmd_audit_import)

    lin = sub.add_parser("lineage", parents=[common],
                         help="where a file came from: the copies, renames and frame writes that made it governed")
    lin.add_argument("path", help="the file (as the server sees it: absolute, or relative to --root)")
    lin.add_argument("--root", default=None, help="the server's root_dir for a relative path (default: cwd)")
    lin.add_argument("--json", action="store_true", help="the lineage records as JSON lines")
    lin.set_defaults(func=cmd_lineage)

    add_credentials_commands(sub)

    demo = sub.add_parser("demo", help="make a synthetic workspace and open JupyterLab on it")
    demo.add_argument("--dir", default=None, help="workspace directory (default: a new temporary one)")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--no-browser", action="store_true")
    demo.add_argument("--no-launch", action="store_true", help="only create the workspace")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    svc = sub.add_parser("service", add_help=False,
                         help="run the guard service (`service --help`), or `service add-token USER --tokens-file F`")
    svc.add_argument("rest", nargs=argparse.REMAINDER)
    svc.set_defaults(func=cmd_service)

    from .redaction.cli import add_subcommands

    add_subcommands(sub)
    return p


def cmd_service(args) -> int:
    """Run the guard service with traitlets arguments, or issue a token for its token mode."""
    if args.rest[:1] == ["add-token"]:
        p = argparse.ArgumentParser(prog="jupyter guard service add-token",
                                    description="issue a token for USER (no Hub); printed once, stored as a digest")
        p.add_argument("user")
        p.add_argument("--tokens-file", required=True, help="as c.GuardService.tokens_file")
        a = p.parse_args(args.rest[1:])
        from .service.identity import add_token

        print(add_token(a.tokens_file, a.user))
        return 0
    from .service.app import GuardService

    app = GuardService()  # not the traitlets singleton: the CLI may run beside other applications (tests)
    app.initialize(args.rest)
    app.start()
    return 0


# -- catalog ---------------------------------------------------------------------------------


def cmd_catalog_validate(args) -> int:
    from .governor import load_governance

    root = os.path.abspath(args.root or os.getcwd())
    try:
        gov = load_governance(args.path, root)
    except CatalogError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s); the catalog is not valid", file=sys.stderr)
        return 1
    for warning in gov.policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    s = gov.catalog.summary()
    by_label = ", ".join(f"{n} {lab}" for lab, n in s["datasets_by_label"].items())
    sources = f", {s['sources']} data sources" if s["sources"] else ""
    print(f"OK: {s['datasets']} datasets ({by_label}), {len(gov.policy.rules)} policy rules{sources}")
    if getattr(args, "check_access", False):
        return _check_access(gov, args.service_user or getpass.getuser())
    return 0


def _check_access(gov, service_user: str) -> int:
    from .catalog.access import check_access
    from .governor import access_of

    def brokered(ds):
        return access_of(ds, gov.policy, gov.catalog, by_label=True) == "brokered"

    findings, checked = check_access(gov.catalog, brokered, service_user)
    for f in findings:
        print(f, file=sys.stderr if f.severe else sys.stdout)
    names = [ds.name for ds in gov.catalog.datasets.values() if brokered(ds)]
    severe = [f for f in findings if f.severe]
    if severe:
        print(f"{len(severe)} access problem(s) in {checked} file(s) of brokered datasets: a user account can read "
              "what only the guard should (docs/admin-guide.md \"Brokered reads\")", file=sys.stderr)
        return 1
    print(f"OK: {checked} file(s) of {len(names)} brokered dataset(s) readable only by {service_user}")
    return 0


def cmd_catalog_init(args) -> int:
    target = Path(args.path)
    if target.exists() and any(target.iterdir()):
        print(f"error: {target} exists and is not empty", file=sys.stderr)
        return 2
    target.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("jupyter_guard").joinpath("default_policy.yaml")) as src:
        shutil.copy(src, target / "policy.yaml")
    (target / "datasets.yaml").write_text(EXAMPLE_DATASETS, encoding="utf-8")
    print(f"wrote {target / 'policy.yaml'} and {target / 'datasets.yaml'}; edit them, then run "
          f"`jupyter guard catalog validate {target}`")
    return 0


EXAMPLE_DATASETS = """\
# Datasets: what each is, how sensitive (label), who to ask (steward), where it lives.
datasets:
  - name: patients
    description: Patient registry extract
    label: restricted            # public < internal < confidential < restricted
    owner: Clinical Research Unit
    steward: Dana Steward <dana.steward@example.org>
    locations:
      - data/patients.csv        # relative to the server root; globs: data/*.parquet; a dir/ governs its tree
      # - uri: s3://clinical-bucket/patients/*
      # - table: warehouse.clinical.patients
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
"""


# -- audit -----------------------------------------------------------------------------------


class _Settings:
    """Where the audit log is, as the server would see it: flags over the config file over defaults."""

    def __init__(self, args):
        from traitlets.config import Config

        self.config = _load_config(args.config) if args.config else Config()
        # the sections the server and the service read, later ones winning as in traitlets
        guard = {}
        for section in ("GuardSettings", "GuardService", "GuardApp"):
            guard.update(self.config.get(section, {}))
        self.audit_dir = args.audit_dir or guard.get("audit_dir") or None
        self.key_file = args.key_file or guard.get("audit_key_file") or None
        self.keyring_backend = args.keyring_backend or guard.get("audit_key_keyring_backend") or None
        self.key_name = args.key_name or guard.get("audit_key_name") or "audit-key"
        self.store_class = _store_class(args.store_class or guard.get("audit_store_class"))
        self.db = args.db
        self.dsn = args.dsn

    @property
    def sqlite(self) -> bool:
        from .audit import SQLiteAuditStore

        return issubclass(self.store_class, SQLiteAuditStore)

    def open_store(self, *, writable: bool):
        from .paths import default_audit_db

        kwargs: dict = {}
        if self.sqlite:
            section = self.config.get(self.store_class.__name__, {})
            kwargs["path"] = self.db or section.get("path") or default_audit_db(self.audit_dir)
            if not os.path.exists(kwargs["path"]) and not writable:
                raise AuditError(f"no audit database at {kwargs['path']} (use --db, --audit-dir or --config)")
        else:
            if self.db:
                raise AuditError(f"--db is for the SQLite store, not {self.store_class.__name__}")
            if self.dsn:
                kwargs["dsn"] = self.dsn
            if not writable and "read_only" in self.store_class.class_trait_names():
                kwargs["read_only"] = True  # never creates tables; the session refuses writes
        try:
            return self.store_class(config=self.config, **kwargs)
        except ValueError as e:  # e.g. no DSN
            raise AuditError(f"{self.store_class.__name__}: {e} (use --config or --dsn)") from None

    def load_key(self, *, create: bool) -> bytes:
        from .credentials import KeyringProvider, load_audit_key
        from .paths import default_key_file

        if self.keyring_backend:
            return load_audit_key(provider=KeyringProvider(backend=self.keyring_backend), key_name=self.key_name,
                                  create=create)
        return load_audit_key(key_file=self.key_file or default_key_file(self.audit_dir), key_name=self.key_name,
                              create=create)


def _load_config(path: str):
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    full = os.path.abspath(os.path.expanduser(path))
    try:
        os.stat(full)
    except PermissionError:
        raise AuditError(f"cannot read the config file {full}: permission denied (the guard service's config "
                         "is readable only by its user: run this as that user)") from None
    except OSError:
        pass  # missing: said below
    try:
        return PyFileConfigLoader(os.path.basename(full), path=os.path.dirname(full)).load_config()
    except ConfigFileNotFound:
        raise AuditError(f"no config file at {full}") from None
    except Exception as e:  # a config file is Python: report what broke, not a traceback
        raise AuditError(f"cannot load the config file {full}: {type(e).__name__}: {e}") from None


def _store_class(value):
    from traitlets.utils.importstring import import_item

    from .audit import AuditStore, SQLiteAuditStore

    if value is None or value == "":
        return SQLiteAuditStore
    if isinstance(value, str):
        try:
            value = import_item(value)
        except (ImportError, AttributeError, ValueError) as e:
            raise AuditError(f"cannot import the audit store class {value!r}: {e}") from None
    if not (isinstance(value, type) and issubclass(value, AuditStore)):
        raise AuditError(f"{value!r} is not an audit store class (a subclass of AuditStore)")
    return value


def open_audit_log(args, *, writable: bool = False):
    """The audit log as the server configures it; never creates a key, nor a store or tables."""
    from .audit import AuditLog

    settings = _Settings(args)
    store = settings.open_store(writable=writable)
    try:
        key = settings.load_key(create=False)
        return AuditLog(store, key)
    except BaseException:
        store.close()
        raise


def cmd_lineage(args) -> int:
    """Follow a file's ``lineage`` records back: each step names who made it from what, and when."""
    from .audit import AuditQuery

    root = os.path.abspath(args.root or os.getcwd())

    def spelled(path: str) -> str:  # as the server records it: absolute, symlinks resolved
        return os.path.realpath(path if os.path.isabs(path) else os.path.join(root, path))

    log = open_audit_log(args)
    try:
        records = log.query(AuditQuery(event_type="lineage", limit=None))
    finally:
        log.close()
    by_target: dict[str, list] = {}
    for rec in records:
        e = rec.event
        for t in {e.target, spelled(e.target)} if e.target else ():
            by_target.setdefault(t, []).append(rec)
    chain, seen, todo = [], set(), [spelled(args.path)]
    while todo:
        target = todo.pop()
        for rec in by_target.get(target, ()):
            if rec.seq in seen:
                continue
            seen.add(rec.seq)
            chain.append(rec)
            e = rec.event
            src = (e.details or {}).get("from")
            if isinstance(src, str) and e.action in ("copy", "rename"):
                todo.append(spelled(src))
    if not chain:
        print(f"no lineage recorded for {args.path}: not made from governed data through the server or a kernel",
              file=sys.stderr)
        return 1
    chain.sort(key=lambda r: r.seq)
    for rec in chain:
        e = rec.event
        if args.json:
            print(json.dumps(rec.to_dict(), sort_keys=True))
            continue
        made = {"copy": "copied from", "rename": "renamed from", "write": "written from"}.get(e.action, f"{e.action} of")
        what = ", ".join((e.details or {}).get("datasets") or []) or (e.details or {}).get("from")
        via = (e.details or {}).get("writer")
        print(f"{rec.time}  {e.target}: {made} {what}" + (f" ({via})" if via else "")
              + f" by {e.user}; governed as {e.dataset} ({e.label})" + (f", cell {e.cell_id}" if e.cell_id else "")
              + f"  [record {rec.seq}]")
    return 0


def cmd_audit_verify(args) -> int:
    log = open_audit_log(args)
    try:
        result = log.verify()
    finally:
        log.close()
    if result.ok:
        print(f"OK: {result.checked} records, chain intact (head seq {result.head_seq})")
        return 0
    print(result, file=sys.stderr)  # "TAMPERED: record N: what is wrong (...)"
    return 1


def _query(args, limit: int | None):
    from .audit import AuditQuery

    return AuditQuery(
        **{name: getattr(args, name) for name in QUERY_FIELDS},
        since=args.since,
        until=args.until,
        limit=limit,
    )


def _iter_all(log, args, page: int = 10_000):
    """Every matching record in chain order, paged so memory stays flat."""
    query = _query(args, page)
    while True:
        records = log.query(query)
        yield from records
        if len(records) < page:
            return
        query.after_seq = records[-1].seq


def cmd_audit_query(args) -> int:
    log = open_audit_log(args)
    try:
        records = log.query(_query(args, args.limit))
    finally:
        log.close()
    for r in records:
        if args.json:
            print(json.dumps(r.to_dict(), sort_keys=True))
        else:
            e = r.event
            what = " ".join(x for x in (e.action, e.target) if x)
            ds = f"{e.dataset}[{e.label}]" if e.dataset else "-"
            print(f"{r.seq:>8}  {r.time}  {e.user or '-':<12} {e.event_type:<15} {e.decision or '-':<7} {ds:<28} {what}")
    return 0


def cmd_audit_export(args) -> int:
    from .audit import export_records

    log = open_audit_log(args)
    with contextlib.ExitStack() as stack:
        stack.callback(log.close)
        out = sys.stdout if args.output == "-" else stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
        n = export_records(_iter_all(log, args), args.format, out)
    if args.output != "-":
        print(f"exported {n} records to {args.output}", file=sys.stderr)
    return 0


def cmd_audit_import(args) -> int:
    """Verify the source; append its records in seq order to the target (re-sealed under the
    target's key, each noting its origin in details.imported_from), then one ``audit_import``
    record naming the source (a second import of the same file is refused); verify the target."""
    import asyncio
    import dataclasses

    from .audit import AuditEvent, AuditLog, AuditQuery
    from .audit.existing import open_existing_log

    source_db = os.path.abspath(os.path.expanduser(args.from_db))
    source = open_existing_log(source_db, key_file=args.from_key_file)
    try:
        checked = source.verify()
        if not checked.ok:
            print(f"refusing to import {source_db}: {checked}", file=sys.stderr)
            return 1
        settings = _Settings(args)
        store = settings.open_store(writable=True)
        if settings.sqlite and os.path.abspath(store.path) == source_db:
            store.close()
            raise AuditError("the source and the target are the same database")
        try:
            key = settings.load_key(create=store.tail() is None)  # as the server: a new key only for an empty store
            target = AuditLog(store, key)
        except BaseException:
            store.close()
            raise
        try:
            target.check_key()
            done = [r for r in target.query(AuditQuery(event_type="audit_import", limit=None))
                    if r.event.target == source_db]
            if done:
                print(f"refusing to import {source_db} again: the target already holds its records "
                      f"(imported as records {done[-1].event.details.get('first')}..{done[-1].event.details.get('last')}, "
                      f"marker record {done[-1].seq})", file=sys.stderr)
                return 1
            first = last = None
            imported = 0

            async def copy() -> None:
                nonlocal first, last, imported
                query = AuditQuery(limit=1000)
                while True:  # only what was verified: records appended to the source since are not
                    records = [r for r in source.query(query) if r.seq <= checked.checked]
                    if not records:
                        return
                    events = []
                    for r in records:
                        details = dict(r.event.details)
                        details["imported_from"] = {"source": source_db, "seq": r.seq, "time": r.time, "mac": r.mac}
                        events.append(dataclasses.replace(r.event, details=details))
                    # one group commit per page; enqueued in this order, so sealed in this order
                    sealed = await asyncio.gather(*(target.append_async(e) for e in events))
                    if any(b.seq <= a.seq for a, b in zip(sealed, sealed[1:])):  # pragma: no cover
                        raise AuditError("import: records were sealed out of order")
                    first = sealed[0].seq if first is None else first
                    last = sealed[-1].seq
                    imported += len(sealed)
                    query.after_seq = records[-1].seq

            asyncio.run(copy())
            # the marker: what was imported, so a second import of the same file is refused
            target.append(AuditEvent(event_type="audit_import", action="import", target=source_db, details={
                "records": imported, "source_head_seq": checked.checked, "first": first, "last": last}))
            result = target.verify()
            where = target.store.describe()
        finally:
            target.close()
    finally:
        source.close()
    span = f" as records {first}..{last}" if imported else ""
    print(f"imported {imported} records (seq 1..{checked.checked}) from {source_db} into {where}{span}")
    if not result.ok:
        print(f"the target does not verify after the import: {result}", file=sys.stderr)
        return 1
    print(f"OK: target verified, {result.checked} records, chain intact")
    return 0


# -- credentials -----------------------------------------------------------------------------


def add_credentials_commands(sub) -> None:
    from .credentials import DEFAULT_ENV_PREFIX

    cred = sub.add_parser("credentials", help="store, list and delete data-source secrets (never shows values)")
    csub = cred.add_subparsers(title="credentials commands", metavar="COMMAND")
    chain = argparse.ArgumentParser(add_help=False)
    g = chain.add_argument_group("providers (mirror the server's c.GuardApp.credential_* settings)")
    g.add_argument("--providers", default="file,env,keyring", help="as c.GuardApp.credential_providers, comma-separated (default: %(default)s)")
    g.add_argument("--credential-dir", default="", help="as c.GuardApp.credential_dir (file provider directory)")
    g.add_argument("--env-prefix", default=DEFAULT_ENV_PREFIX, help="as c.GuardApp.credential_env_prefix (default: %(default)s)")
    g.add_argument("--keyring-backend", default="", help="as c.GuardApp.credential_keyring_backend (dotted class)")
    g.add_argument("--keyring-file", default="", help="as c.GuardApp.credential_keyring_file")
    g.add_argument("--keyring-password-env", default="", help="as c.GuardApp.credential_keyring_password_env")
    g.add_argument("--keyring-password-file", default="", help="as c.GuardApp.credential_keyring_password_file")

    st = csub.add_parser("set", parents=[chain], help="store a secret read from a file or stdin (never a prompt)")
    st.add_argument("name", help="secret name (a source's `credential:` in the catalog)")
    st.add_argument("--provider", choices=("keyring", "file"), default=None,
                    help="where to store it (default: the first of keyring/file in the provider order that is on)")
    st.add_argument("--value-file", default="-", help="file holding the value, or - for stdin (default); "
                    "one trailing newline is dropped")
    st.set_defaults(func=cmd_credentials_set)
    ls = csub.add_parser("list", parents=[chain], help="secret names and the providers holding them (never values)")
    ls.set_defaults(func=cmd_credentials_list)
    dl = csub.add_parser("delete", parents=[chain], help="delete a secret from the writable providers holding it")
    dl.add_argument("name")
    dl.add_argument("--provider", choices=("keyring", "file"), default=None, help="only from this provider")
    dl.set_defaults(func=cmd_credentials_delete)


def _credential_chain(args):
    from .credentials import CredentialChain, CredentialSettings

    settings = CredentialSettings(
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        directory=args.credential_dir,
        env_prefix=args.env_prefix,
        keyring_backend=args.keyring_backend,
        keyring_file=args.keyring_file,
        keyring_password_env=args.keyring_password_env,
        keyring_password_file=args.keyring_password_file,
    )
    return CredentialChain.from_settings(settings)


def _read_value(path: str) -> str:
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CredentialError("pipe the value on standard input or give --value-file PATH; "
                                  "jupyter guard never prompts on a terminal")
        value = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise CredentialError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise CredentialError("the value is empty; refusing to store an empty secret")
    return value


def cmd_credentials_set(args) -> int:
    chain = _credential_chain(args)
    kind = args.provider or next((p.kind for p in chain.providers if p.kind in ("keyring", "file")), None)
    if kind is None:
        raise CredentialError("no writable provider is on: give --keyring-backend or --credential-dir "
                              "(as c.GuardApp.credential_keyring_backend / credential_dir)")
    provider = chain.provider(kind)
    value = _read_value(args.value_file)
    provider.set(args.name, value)
    where = next(p.name for p in chain.providers if p.kind == kind)  # as `list` names it
    print(f"stored secret {args.name!r} in {where}")
    holders = chain.holders().get(args.name, [])
    if holders and holders[0] != where:
        print(f"warning: {holders[0]} comes earlier in the provider order and also holds {args.name!r}; "
              "lookups get that one", file=sys.stderr)
    return 0


def cmd_credentials_list(args) -> int:
    chain = _credential_chain(args)
    holders = chain.holders()
    if not holders:
        print(f"no secrets in: {', '.join(chain.names()) or 'no provider is on'}")
    width = max((len(n) for n in holders), default=0)
    for name, where in holders.items():
        shadowed = f"  (also in: {', '.join(where[1:])}; not used)" if len(where) > 1 else ""
        print(f"{name:<{width}}  {where[0]}{shadowed}")
    for off in chain.off:
        print(f"off: {off}", file=sys.stderr)
    return 0


def cmd_credentials_delete(args) -> int:
    from .credentials import EnvProvider

    chain = _credential_chain(args)
    kinds = [args.provider] if args.provider else [p.kind for p in chain.providers if p.kind in ("keyring", "file")]
    deleted = []
    for kind in kinds:
        provider = chain.provider(kind)
        if args.name in provider.list_names():
            provider.delete(args.name)
            deleted.append(provider.name)
    for p in chain.providers:
        if isinstance(p, EnvProvider) and p.get(args.name) is not None:
            print(f"note: {args.name!r} is still set in the environment ({p.variable(args.name)}; read-only)", file=sys.stderr)
    if not deleted:
        print(f"error: no writable provider holds {args.name!r} ({', '.join(chain.names()) or 'no provider is on'})",
              file=sys.stderr)
        return 1
    print(f"deleted secret {args.name!r} from {', '.join(deleted)}")
    return 0


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    import tempfile

    from .demo import build_workspace, launch

    directory = args.dir or tempfile.mkdtemp(prefix="jupyter-guard-demo-")
    ws = build_workspace(directory, seed=args.seed)
    print(f"demo workspace: {directory}")
    if args.no_launch:
        return 0
    return launch(ws.root, port=args.port, open_browser=not args.no_browser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
