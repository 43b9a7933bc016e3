"""Secret providers: where the audit key (and later data-source credentials) come from.

Nothing here ever prompts. A provider either answers, says it does not know the name
(``None``), or raises :class:`~jupyter_guard.errors.CredentialError` with a message that says
what to configure. Messages and logs name secrets, never their values.

* :class:`KeyringProvider` - a keyring backend chosen explicitly by its dotted class path
  (there is no OS keyring on a headless server, and the default backend may prompt or fail).
* :class:`EnvProvider` - environment variables with a prefix (read-only).
* :class:`FileProvider` - one file per secret in a directory (Kubernetes mounted secrets).
* :func:`load_audit_key` - the HMAC key of the audit log, from a key file or a provider.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import stat
from typing import Any

from .errors import AuditKeyError, CredentialError

__all__ = [
    "AUDIT_KEY_BYTES",
    "EnvProvider",
    "FileProvider",
    "KeyringProvider",
    "SecretProvider",
    "load_audit_key",
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
    ``file_path`` sets where a file backend keeps its data. The backend instance is held here
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
                    "for it; jupyter_guard never prompts: pass password=..."
                )
            self._backend.keyring_key = password
            self._check_password()

    def _prompted(self) -> CredentialError:
        return CredentialError(
            f"keyring backend {self.backend_name!r} tried to prompt for input; jupyter_guard "
            "never prompts: configure it non-interactively (e.g. pass password=...)"
        )

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        import keyring.errors

        try:
            return fn(*args)
        except EOFError:
            raise self._prompted() from None
        except keyring.errors.KeyringError as exc:
            raise CredentialError(f"{self.name}: cannot {what}: {exc}") from None
        except (ValueError, OSError) as exc:
            raise CredentialError(f"{self.name}: cannot {what}: {exc}") from None

    _REF = ("keyring-setting", "password reference", "password reference value")

    def _check_password(self) -> None:
        """Encrypted file backends: check the password, or initialise a new file with it."""
        service, user, value = self._REF
        path = getattr(self._backend, "file_path", None)
        if path and os.path.exists(path):
            try:
                ref = self._backend.get_password(service, user)
            except Exception:  # noqa: BLE001 - a wrong password garbles decryption any way
                ref = None
            if ref != value:
                raise CredentialError(f"{self.name}: wrong password for the keyring file {path}")
        else:
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
        self.prefix = prefix
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


# --------------------------------------------------------------------------- the audit key


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AuditKeyError(f"the audit key in {where} is not hexadecimal") from None
    if len(key) < 16:
        raise AuditKeyError(
            f"the audit key in {where} is too short ({len(key)} bytes; at least 16, "
            f"{AUDIT_KEY_BYTES} recommended)"
        )
    return key


def _read_key_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise AuditKeyError(f"cannot open the audit key file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditKeyError(f"the audit key file {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise AuditKeyError(
                f"the audit key file {path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        with os.fdopen(os.dup(fd), "r", encoding="ascii", errors="replace") as f:
            text = f.read(4096)
    finally:
        os.close(fd)
    return _parse_key(text, path)


def _create_key_file(path: str) -> bytes | None:
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
        raise AuditKeyError(f"cannot create the audit key file {path}: {exc.strerror}") from None
    finally:
        try:
            os.remove(tmp)
        except OSError:
            pass
    return key


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
        path = os.path.abspath(os.path.expanduser(key_file))
        if os.path.lexists(path):
            return _read_key_file(path)
        if not create:
            raise AuditKeyError(
                f"the audit key file {path} does not exist, and the audit store already holds "
                "records: restore the key that wrote them (a new key could not verify the log)"
            )
        key = _create_key_file(path)
        return key if key is not None else _read_key_file(path)
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
