"""Secret providers: where the audit key and data-source credentials come from.

Nothing here ever prompts. A provider either answers, says it does not know the name
(``None``), or raises :class:`~jupyter_guard.errors.CredentialError` with a message that says
what to configure. Messages and logs name secrets, never their values.

* :class:`KeyringProvider` - a keyring backend chosen explicitly by its dotted class path
  (there is no OS keyring on a headless server, and the default backend may prompt or fail).
* :class:`EnvProvider` - environment variables with a prefix (read-only).
* :class:`FileProvider` - one file per secret in a directory (Kubernetes mounted secrets).
* :class:`CredentialChain` - data-source secrets looked up through providers in a configured
  order; a provider that fails stops the lookup (never a silent fall-through), nothing is
  cached, so a secret rotated in its provider is used by the next lookup.
* :func:`load_audit_key` - the HMAC key of the audit log, from a key file or a provider.
"""

from __future__ import annotations

import configparser
import importlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

from .errors import AuditKeyError, CredentialError

__all__ = [
    "AUDIT_KEY_BYTES",
    "PROVIDER_KINDS",
    "CredentialChain",
    "CredentialSettings",
    "EnvProvider",
    "EnvSecrets",
    "FileProvider",
    "FileSecrets",
    "KeyringProvider",
    "KeyringSecrets",
    "SecretProvider",
    "SecretSource",
    "load_audit_key",
    "load_key_file",
]

AUDIT_KEY_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CredentialError(
            f"invalid secret name {name!r}: use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit"
        )
    return name


class SecretProvider:
    """Where secrets live. ``get`` returns ``None`` for an unknown name."""

    name = "secrets"
    kind = "secrets"  # short name: file | env | keyring

    def get(self, name: str) -> str | None:
        raise NotImplementedError

    def set(self, name: str, value: str) -> None:
        raise CredentialError(f"the {self.name} secret provider is read-only")

    def delete(self, name: str) -> None:
        raise CredentialError(f"the {self.name} secret provider is read-only")

    def list_names(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- keyring


def _load_class(dotted: str) -> type:
    module_name, _, cls_name = dotted.rpartition(".")
    if not module_name:
        raise CredentialError(
            f"keyring backend {dotted!r} is not a dotted class path "
            "(e.g. 'keyrings.alt.file.PlaintextKeyring')"
        )
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError) as exc:
        raise CredentialError(f"cannot load keyring backend {dotted!r}: {exc}") from None
    if not isinstance(cls, type):
        raise CredentialError(f"keyring backend {dotted!r} is not a class")
    return cls


class KeyringProvider(SecretProvider):
    """Secrets in a keyring backend chosen explicitly, never the OS default.

    ``backend`` is a dotted class path, e.g. ``keyrings.alt.file.PlaintextKeyring`` or
    ``keyrings.alt.file.EncryptedKeyring``. Backends that unlock with a password
    (``keyring_key``: the encrypted-file backends of keyrings.alt and keyrings.cryptfile) need
    ``password``; without it this refuses, because they would otherwise prompt on a terminal.
    ``file_path`` sets where a file backend keeps its data; with ``create=False`` a missing
    encrypted file is left missing (the provider then holds nothing). The backend instance is held here
    and used directly: the process-wide ``keyring.set_keyring`` default is left alone, so other
    code in the process (and this provider) cannot change each other's backend.
    ``keyring.backends.fail.Keyring`` (no keyring available) is refused.
    """

    def __init__(
        self,
        backend: str,
        *,
        service: str = "jupyter-guard",
        password: str | None = None,
        file_path: str | None = None,
        create: bool = True,
        **backend_options: Any,
    ):
        import keyring.backend
        import keyring.backends.fail

        cls = _load_class(backend)
        if not issubclass(cls, keyring.backend.KeyringBackend):
            raise CredentialError(f"{backend!r} is not a keyring backend class")
        if issubclass(cls, keyring.backends.fail.Keyring):
            raise CredentialError(
                f"keyring backend {backend!r} is the 'no keyring available' backend; choose a "
                "real one explicitly, e.g. keyrings.alt.file.PlaintextKeyring with file_path, "
                "or use a FileProvider / EnvProvider"
            )
        self.backend_name = backend
        self.kind = "keyring"
        self.name = f"keyring ({backend})"
        self.service = service
        try:
            self._backend = cls(**backend_options)
        except EOFError:
            raise self._prompted() from None
        except Exception as exc:  # noqa: BLE001 - any backend failure becomes one clear error
            raise CredentialError(f"cannot create keyring backend {backend!r}: {exc}") from None
        if file_path is not None:
            self._backend.file_path = file_path
        needs_password = hasattr(cls, "keyring_key")
        if needs_password:
            if not password:
                raise CredentialError(
                    f"keyring backend {backend!r} is unlocked with a password and would prompt "
                    "for it; jupyter_guard never prompts: pass password=... (server: "
                    "c.GuardApp.credential_keyring_password_env or _password_file; CLI: "
                    "--keyring-password-env)"
                )
            self._backend.keyring_key = password
            self._check_password(create)

    def _prompted(self) -> CredentialError:
        return CredentialError(
            f"keyring backend {self.backend_name!r} tried to prompt for input; jupyter_guard "
            "never prompts: configure it non-interactively (e.g. pass password=...)"
        )

    @property
    def file_path(self) -> str | None:
        return getattr(self._backend, "file_path", None)

    def _check_readable(self) -> None:
        """A keyring file that exists must be readable: file backends read it with
        ``configparser.read``, which silently skips a file it cannot open (a lookup would then
        find nothing and fall through to the next provider instead of failing)."""
        path = self.file_path
        if not path or not os.path.lexists(path):
            return
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CredentialError(
                f"{self.name}: cannot read the keyring file {path}: {exc.strerror or type(exc).__name__}"
            ) from None

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """Call the backend; any failure becomes one CredentialError naming this provider.

        Messages never quote the backend's own text for parse errors: a parser quotes the
        offending line of the file, which may hold a secret.
        """
        import keyring.errors

        self._check_readable()
        try:
            return fn(*args)
        except EOFError:
            raise self._prompted() from None
        except (configparser.Error, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            at = f" near line {line}" if line else ""
            raise CredentialError(
                f"{self.name}: cannot {what}: the keyring file {self.file_path} is corrupt (not a "
                f"keyring file{at}); restore it or create it anew with `jupyter guard credentials set`"
            ) from None
        except keyring.errors.KeyringError as exc:
            raise CredentialError(f"{self.name}: cannot {what}: {exc}") from None
        except OSError as exc:
            raise CredentialError(f"{self.name}: cannot {what}: {exc.strerror or type(exc).__name__}") from None
        except Exception as exc:  # noqa: BLE001 - decryption and format failures of any backend
            raise CredentialError(
                f"{self.name}: cannot {what}: the backend failed ({type(exc).__name__}); the keyring "
                f"file {self.file_path} is corrupt or was encrypted with another password"
            ) from None

    _REF = ("keyring-setting", "password reference", "password reference value")

    def _check_password(self, create: bool = True) -> None:
        """Encrypted file backends: check the password, or initialise a new file with it."""
        service, user, value = self._REF
        path = self.file_path
        self._check_readable()
        if path and os.path.exists(path) and os.path.getsize(path) > 0:
            try:
                ref = self._backend.get_password(service, user)
            except (configparser.Error, UnicodeDecodeError):
                raise CredentialError(
                    f"{self.name}: the keyring file {path} is corrupt (not a keyring file)"
                ) from None
            except OSError as exc:
                raise CredentialError(f"{self.name}: cannot read the keyring file {path}: {exc.strerror}") from None
            except Exception:  # noqa: BLE001 - a wrong password garbles decryption any way
                raise CredentialError(f"{self.name}: wrong password for the keyring file {path}") from None
            if ref is None:
                raise CredentialError(
                    f"{self.name}: the keyring file {path} has no password reference: it is corrupt "
                    "or was written by another backend"
                )
            if ref != value:
                raise CredentialError(f"{self.name}: wrong password for the keyring file {path}")
        elif create:
            self._call(
                "initialise the keyring file", self._backend.set_password, service, user, value
            )

    _INDEX = "__jupyter_guard_names__"

    def _names(self) -> list[str]:
        raw = self._call("list secrets", self._backend.get_password, self.service, self._INDEX)
        return json.loads(raw) if raw else []

    def get(self, name: str) -> str | None:
        _check_name(name)
        return self._call(f"read secret {name!r}", self._backend.get_password, self.service, name)

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        self._call(f"store secret {name!r}", self._backend.set_password, self.service, name, value)
        names = self._names()
        if name not in names:
            names.append(name)
            self._call(
                "update the index",
                self._backend.set_password,
                self.service,
                self._INDEX,
                json.dumps(sorted(names)),
            )

    def delete(self, name: str) -> None:
        import keyring.errors

        _check_name(name)
        try:
            self._call(f"delete secret {name!r}", self._backend.delete_password, self.service, name)
        except CredentialError as exc:
            if not isinstance(exc.__context__, keyring.errors.PasswordDeleteError):
                raise
        names = [n for n in self._names() if n != name]
        self._call(
            "update the index",
            self._backend.set_password,
            self.service,
            self._INDEX,
            json.dumps(names),
        )

    def list_names(self) -> list[str]:
        """Names set through this provider (keyring backends cannot enumerate by themselves)."""
        return [n for n in self._names() if self.get(n) is not None]


# --------------------------------------------------------------------------- env and files


class EnvProvider(SecretProvider):
    """Read-only secrets from environment variables ``<prefix><NAME>``.

    The name is upper-cased and ``.``/``-`` become ``_``: with the default prefix,
    ``audit-key`` is read from ``JUPYTER_GUARD_SECRET_AUDIT_KEY``.
    """

    def __init__(self, prefix: str = "JUPYTER_GUARD_SECRET_", environ: Any = None):
        if not prefix:
            raise CredentialError("the environment secret prefix must not be empty")
        self.prefix = prefix
        self.kind = "env"
        self.name = f"environment ({prefix}*)"
        self._environ = os.environ if environ is None else environ

    def variable(self, name: str) -> str:
        _check_name(name)
        return self.prefix + re.sub(r"[.-]", "_", name).upper()

    def get(self, name: str) -> str | None:
        return self._environ.get(self.variable(name))

    def list_names(self) -> list[str]:
        n = len(self.prefix)
        return sorted(k[n:].lower() for k in self._environ if k.startswith(self.prefix) and k[n:])


class FileProvider(SecretProvider):
    """One file per secret in ``directory``: the file name is the secret name.

    Fits Kubernetes mounted secrets (read-only volume, keys as files; the ``..data`` links and
    other dot-entries are ignored). One trailing newline is stripped. ``set`` writes a new file
    with mode 0600 atomically (for local use; a mounted secret volume is read-only).
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        self.kind = "file"
        self.name = f"files ({self.directory})"

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, _check_name(name))

    def get(self, name: str) -> str | None:
        path = self._path(name)
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialError(f"cannot read secret {name!r} from {path}: {exc}") from None
        return value.removesuffix("\n")

    def set(self, name: str, value: str) -> None:
        path = self._path(name)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, value.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            raise CredentialError(
                f"cannot write secret {name!r} to {path}: {exc.strerror}"
            ) from None

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CredentialError(
                f"cannot delete secret {name!r} at {path}: {exc.strerror}"
            ) from None

    def list_names(self) -> list[str]:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(
            e
            for e in entries
            if _NAME.match(e)
            and not e.endswith(".tmp")
            and os.path.isfile(os.path.join(self.directory, e))
        )


# --------------------------------------------------------------------------- the chain

#: provider kinds of a credential chain, as named in c.GuardApp.credential_providers
PROVIDER_KINDS = ("file", "env", "keyring")
DEFAULT_ENV_PREFIX = "JUPYTER_GUARD_SECRET_"


@dataclass(frozen=True)
class CredentialSettings:
    """Where data-source secrets live: the c.GuardApp.credential_* traits (and the CLI flags)."""

    providers: Sequence[str] = PROVIDER_KINDS
    directory: str = ""  # FileProvider directory; "" = off
    env_prefix: str = DEFAULT_ENV_PREFIX
    keyring_backend: str = ""  # dotted class; "" = off (never the OS default)
    keyring_file: str = ""  # "" = the backend's own default location
    keyring_password_env: str = ""  # variable holding the password of an encrypted file backend
    keyring_password_file: str = ""  # or a (mounted) file holding it
    keyring_service: str = "jupyter-guard"


class LazyProvider(SecretProvider):
    """A provider built afresh for every use.

    A keyring provider reads its password and checks it against the file when it is built;
    building it per lookup means a changed password, a replaced file or a fixed permission
    is used at once, and a broken one fails that lookup (naming the provider) instead of the
    server's start.
    """

    def __init__(self, kind: str, name: str, factory: Callable[[bool], SecretProvider]):
        self.kind, self.name, self._factory = kind, name, factory

    def build(self, create: bool = False) -> SecretProvider:
        """The provider; ``create`` lets it initialise a missing store (only to write a secret)."""
        try:
            return self._factory(create)
        except CredentialError:
            raise
        except Exception as exc:  # noqa: BLE001 - any construction failure names the provider
            raise CredentialError(f"{self.name}: cannot be used: {type(exc).__name__}") from None

    def get(self, name: str) -> str | None:
        return self.build().get(name)

    def set(self, name: str, value: str) -> None:
        self.build(create=True).set(name, value)

    def delete(self, name: str) -> None:
        self.build().delete(name)

    def list_names(self) -> list[str]:
        return self.build().list_names()


class SecretSource(Configurable):
    """One kind of secret provider, configured by its own traits (``c.<Class>.<trait>``).

    ``c.GuardApp.credential_providers`` lists these classes in lookup order; an admin's own
    subclass (a vault, a cloud secret manager) goes in the same list and returns its provider.
    """

    kind = "secrets"

    def provider(self, environ: Mapping[str, str]) -> SecretProvider | None:
        """The provider, or None when its settings switch it off (see ``off_reason``)."""
        raise NotImplementedError

    off_reason = ""

    def secret_variables(self, environ: Mapping[str, str]) -> list[str]:
        """Environment variables that hold secrets of this source (kept out of kernels)."""
        return []


class FileSecrets(SecretSource):
    """Secrets as files in a directory, e.g. a Kubernetes secret mounted read-only."""

    kind = "file"
    directory = Unicode(
        "",
        config=True,
        help="""Directory with one file per secret (the file name is the secret's name). Empty:
        the file provider is off.""",
    )
    off_reason = "file (no FileSecrets.directory)"

    def provider(self, environ):
        return FileProvider(self.directory) if self.directory else None


class EnvSecrets(SecretSource):
    """Secrets in environment variables ``<prefix><NAME>`` (read-only)."""

    kind = "env"
    prefix = Unicode(
        DEFAULT_ENV_PREFIX,
        config=True,
        help="""Environment variables <prefix><NAME> hold secrets (name upper-cased, '.' and '-'
        as '_'). These variables are removed from the environment of kernels the server starts.""",
    )

    def provider(self, environ):
        return EnvProvider(self.prefix, environ=environ)

    def secret_variables(self, environ):
        return [k for k in environ if self.prefix and k.startswith(self.prefix)]


class KeyringSecrets(SecretSource):
    """Secrets in a keyring backend named explicitly (never the OS default, which may prompt)."""

    kind = "keyring"
    backend = Unicode(
        "",
        config=True,
        help="""Dotted class of the keyring backend holding data-source secrets, e.g.
        keyrings.alt.file.EncryptedKeyring or keyrings.cryptfile.cryptfile.CryptFileKeyring.
        Empty: the keyring provider is off.""",
    )
    file = Unicode("", config=True, help="File of a file-based keyring backend. Empty: the backend's own default.")
    password_env = Unicode(
        "",
        config=True,
        help="""Environment variable holding the password of an encrypted keyring file (from a
        mounted secret or the service's environment). Removed from kernels' environments.""",
    )
    password_file = Unicode(
        "",
        config=True,
        help="File holding the password of an encrypted keyring file, used when password_env is empty.",
    )
    service = Unicode("jupyter-guard", config=True, help="The keyring service name the secrets are stored under.")
    off_reason = "keyring (no KeyringSecrets.backend)"

    def provider(self, environ):
        if not self.backend:
            return None
        _load_class(self.backend)  # a typo in the class is a configuration error now
        return _keyring_provider(self.settings(), environ)

    def settings(self) -> CredentialSettings:
        return CredentialSettings(providers=("keyring",), keyring_backend=self.backend, keyring_file=self.file,
                                  keyring_password_env=self.password_env, keyring_password_file=self.password_file,
                                  keyring_service=self.service)

    def secret_variables(self, environ):
        return [self.password_env] if self.password_env and self.password_env in environ else []


class CredentialChain:
    """Data-source secrets through providers in order.

    ``lookup`` asks each provider in turn and returns ``(value, provider kind)`` from the first
    that has the name. A provider that *fails* (a locked or corrupt keyring file, a wrong
    password, an unreadable secret file) stops the lookup with a CredentialError naming the
    source and that provider: the chain never falls through to the next provider silently.
    A provider that simply does not hold the name is skipped. Nothing is cached.
    """

    def __init__(self, providers: Sequence[SecretProvider], off: Sequence[str] = ()):
        self.providers = list(providers)
        #: providers named in the order but switched off, with the setting that would switch them on
        self.off = list(off)
        self.sources: list[SecretSource] = []

    @classmethod
    def from_sources(cls, sources: Sequence[SecretSource], environ: Mapping[str, str] | None = None) -> CredentialChain:
        """The chain of configured sources, in order; a source listed twice is an error."""
        environ = os.environ if environ is None else environ
        providers: list[SecretProvider] = []
        off: list[str] = []
        seen: set[str] = set()
        for source in sources:
            if source.kind in seen:
                raise CredentialError(f"credential provider {source.kind!r} is listed twice")
            seen.add(source.kind)
            provider = source.provider(environ)
            if provider is None:
                off.append(source.off_reason or f"{source.kind} (switched off)")
            else:
                providers.append(provider)
        chain = cls(providers, off)
        chain.sources = list(sources)
        return chain

    @classmethod
    def from_settings(cls, settings: CredentialSettings, environ: Mapping[str, str] | None = None) -> CredentialChain:
        """The chain the CLI's flags describe (the same sources the server configures)."""
        return cls.from_sources(sources_from_settings(settings), environ)

    def secret_variables(self, environ: Mapping[str, str]) -> list[str]:
        """Variables of an environment that hold secrets of this chain's sources (kept out of kernels)."""
        return [v for source in self.sources for v in source.secret_variables(environ)]

    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    def provider(self, kind: str) -> SecretProvider:
        """The provider of that kind (``file``, ``env``, ``keyring``), or a CredentialError saying why not."""
        for p in self.providers:
            if p.kind == kind:
                return p.build(create=True) if isinstance(p, LazyProvider) else p
        why = next((o for o in self.off if o.startswith(kind + " ")), f"{kind} is not in the provider order")
        raise CredentialError(f"no {kind} credential provider is configured: {why}")

    def lookup(self, name: str, *, source: str | None = None) -> tuple[str, str]:
        """``(value, provider kind)`` of the secret ``name``; CredentialError naming source and provider."""
        what = f"the credential of data source {source!r} (secret {name!r})" if source else f"secret {name!r}"
        for p in self.providers:
            try:
                value = p.get(name)
            except CredentialError as exc:
                raise CredentialError(
                    f"cannot get {what} from {p.name}: {exc}. "
                    "The remaining providers were not asked: fix this one, or take it out of the order."
                ) from None
            if value is None:
                continue
            if not value:
                raise CredentialError(f"{what} is empty in {p.name}")
            return value, p.kind
        asked = ", ".join(
            f"environment variable {p.variable(name)}" if isinstance(p, EnvProvider) else p.name for p in self.providers
        ) or "none configured"
        off = f"; switched off: {', '.join(self.off)}" if self.off else ""
        raise CredentialError(
            f"no provider holds {what} (asked, in order: {asked}{off}). "
            f"An admin stores it with `jupyter guard credentials set {name}`."
        )

    def holders(self) -> dict[str, list[str]]:
        """Every secret name and the providers that hold it, in lookup order. Never values."""
        found: dict[str, list[str]] = {}
        for p in self.providers:
            for n in p.list_names():
                found.setdefault(n, []).append(p.name)
        return dict(sorted(found.items()))

def sources_from_settings(settings: CredentialSettings) -> list[SecretSource]:
    """The configured sources of a CredentialSettings (``providers`` gives kinds and order)."""
    make = {
        "file": lambda: FileSecrets(directory=settings.directory),
        "env": lambda: EnvSecrets(prefix=settings.env_prefix),
        "keyring": lambda: KeyringSecrets(backend=settings.keyring_backend, file=settings.keyring_file,
                                          password_env=settings.keyring_password_env,
                                          password_file=settings.keyring_password_file,
                                          service=settings.keyring_service),
    }
    out = []
    for kind in settings.providers:
        if kind not in make:
            raise CredentialError(
                f"unknown credential provider {kind!r} (expected some of {', '.join(PROVIDER_KINDS)}, in order)"
            )
        out.append(make[kind]())
    return out


def _keyring_provider(settings: CredentialSettings, environ: Mapping[str, str]) -> LazyProvider:
    backend = settings.keyring_backend

    def build(create: bool) -> SecretProvider:
        password = None
        if settings.keyring_password_env:
            password = environ.get(settings.keyring_password_env)
            if not password:
                raise CredentialError(
                    f"keyring ({backend}): the password variable {settings.keyring_password_env} "
                    "(credential_keyring_password_env) is not set in the server's environment"
                )
        elif settings.keyring_password_file:
            try:
                with open(settings.keyring_password_file, encoding="utf-8") as f:
                    password = f.read().removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise CredentialError(
                    f"keyring ({backend}): cannot read the password file {settings.keyring_password_file} "
                    f"(credential_keyring_password_file): {getattr(exc, 'strerror', None) or type(exc).__name__}"
                ) from None
        path = os.path.abspath(os.path.expanduser(settings.keyring_file)) if settings.keyring_file else None
        return KeyringProvider(backend, service=settings.keyring_service, password=password, file_path=path, create=create)

    where = f", {settings.keyring_file}" if settings.keyring_file else ""
    return LazyProvider("keyring", f"keyring ({backend}{where})", build)


# --------------------------------------------------------------------------- the audit key


def _parse_key(text: str, where: str, what: str = "audit key") -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AuditKeyError(f"the {what} in {where} is not hexadecimal") from None
    if len(key) < 16:
        raise AuditKeyError(
            f"the {what} in {where} is too short ({len(key)} bytes; at least 16, "
            f"{AUDIT_KEY_BYTES} recommended)"
        )
    return key


def _read_key_file(path: str, what: str = "audit key") -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise AuditKeyError(f"cannot open the {what} file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditKeyError(f"the {what} file {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise AuditKeyError(
                f"the {what} file {path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        with os.fdopen(os.dup(fd), "r", encoding="ascii", errors="replace") as f:
            text = f.read(4096)
    finally:
        os.close(fd)
    return _parse_key(text, path, what)


def _create_key_file(path: str, what: str = "audit key") -> bytes | None:
    """Create the key file, mode 0600, complete or not at all.

    The key is written to a private temporary file (``O_CREAT|O_EXCL``, 0600), fsynced, then
    published with ``link()``, which fails if the path exists: two processes starting at once
    agree on one key and neither ever reads a half-written file. ``None`` when another process
    won the race.
    """
    key = secrets.token_bytes(AUDIT_KEY_BYTES)
    parent = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        except OSError:  # no hard links here: exclusive create of the final name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return None
            try:
                os.write(fd, key.hex().encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise AuditKeyError(f"cannot create the {what} file {path}: {exc.strerror}") from None
    finally:
        try:
            os.remove(tmp)
        except OSError:
            pass
    return key


def load_key_file(path: str, *, what: str, create: bool) -> bytes:
    """A key kept as hex in a 0600 file (``what`` names it in messages); created when missing
    and ``create`` is true, else AuditKeyError saying it is missing."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.lexists(path):
        return _read_key_file(path, what)
    if not create:
        raise AuditKeyError(
            f"the {what} file {path} does not exist, and the audit store already holds "
            "records: restore the key that wrote them (a new key could not verify the log)"
        )
    key = _create_key_file(path, what)
    return key if key is not None else _read_key_file(path, what)


def load_audit_key(
    *,
    key_file: str | None = None,
    provider: SecretProvider | None = None,
    key_name: str = "audit-key",
    create: bool = False,
) -> bytes:
    """The audit log's HMAC key, from ``key_file`` or from ``provider`` under ``key_name``.

    With ``create=True`` a missing key is generated (32 random bytes, stored as hex; a key file
    is created with ``O_CREAT|O_EXCL`` and mode 0600). Pass ``create=False`` whenever the store
    already holds records: a lost key then raises :class:`AuditKeyError` instead of silently
    starting a new chain that nobody could verify against the old one. A key file readable by
    group or others is refused.
    """
    if (key_file is None) == (provider is None):
        raise ValueError("load_audit_key needs exactly one of key_file= or provider=")
    if key_file is not None:
        return load_key_file(key_file, what="audit key", create=create)
    assert provider is not None
    where = f"secret {key_name!r} of {provider.name}"
    value = provider.get(key_name)
    if value is not None:
        return _parse_key(value, where)
    if not create:
        raise AuditKeyError(
            f"the audit key ({where}) is missing, and the audit store already holds records: "
            "restore the key that wrote them (a new key could not verify the log)"
        )
    key = secrets.token_bytes(AUDIT_KEY_BYTES)
    provider.set(key_name, key.hex())
    return key
