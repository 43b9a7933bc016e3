"""Secret providers and the audit key: real files, real keyring backends, never a prompt."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import keyring.backend
import pytest

import jupyter_guard.credentials
from jupyter_guard.credentials import (
    EnvProvider,
    FileProvider,
    KeyringProvider,
    load_audit_key,
)
from jupyter_guard.errors import AuditKeyError, CredentialError

PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


# ------------------------------------------------------------------ the audit key file


def test_key_file_created_private_then_reused(tmp_path):
    path = tmp_path / "keys" / "audit.key"
    key = load_audit_key(key_file=str(path), create=True)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.read_text().strip() == key.hex()
    assert load_audit_key(key_file=str(path), create=False) == key
    assert load_audit_key(key_file=str(path), create=True) == key  # never replaced


def test_key_file_created_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        load_audit_key(key_file=str(tmp_path / "k"), create=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "audit.key"
    load_audit_key(key_file=str(path), create=True)
    os.chmod(path, mode)
    with pytest.raises(AuditKeyError, match=f"{path}.*group or others.*chmod 600"):
        load_audit_key(key_file=str(path), create=False)


def test_missing_key_without_create(tmp_path):
    path = tmp_path / "audit.key"
    with pytest.raises(AuditKeyError, match=f"{path} does not exist.*restore the key"):
        load_audit_key(key_file=str(path), create=False)
    assert not path.exists()  # a lost key never silently starts a new chain


def test_bad_key_file_contents(tmp_path):
    path = tmp_path / "audit.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not hex at all\n")
    os.close(fd)
    with pytest.raises(AuditKeyError, match="not hexadecimal"):
        load_audit_key(key_file=str(path))
    path.write_text("abcd\n")
    with pytest.raises(AuditKeyError, match="too short"):
        load_audit_key(key_file=str(path))
    secret = "ab" * 32
    path.write_text(secret + "\n")
    with pytest.raises(AuditKeyError) as info:
        os.chmod(path, 0o644)
        load_audit_key(key_file=str(path))
    assert secret not in str(info.value)  # never the key in a message


def test_key_file_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real.key"
    load_audit_key(key_file=str(real), create=True)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(AuditKeyError, match="cannot open"):
        load_audit_key(key_file=str(link))


def test_concurrent_first_start_agrees_on_one_key(tmp_path):
    path = str(tmp_path / "audit.key")
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        keys.append(load_audit_key(key_file=path, create=True))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1


def test_exactly_one_source():
    with pytest.raises(ValueError):
        load_audit_key()
    with pytest.raises(ValueError):
        load_audit_key(key_file="x", provider=EnvProvider())


# ------------------------------------------------------------------ providers


def test_file_provider_like_a_kubernetes_secret_volume(tmp_path):
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "..data").mkdir()
    (d / "audit-key").write_text("cd" * 32 + "\n")
    (d / "db-password").write_text("pw")
    p = FileProvider(str(d))
    assert p.get("audit-key") == "cd" * 32
    assert p.get("db-password") == "pw"
    assert p.get("missing") is None
    assert p.list_names() == ["audit-key", "db-password"]
    assert load_audit_key(provider=p, key_name="audit-key") == bytes.fromhex("cd" * 32)
    with pytest.raises(CredentialError, match="invalid secret name"):
        p.get("../etc/passwd")
    p.set("new", "v")
    assert p.get("new") == "v" and stat.S_IMODE(os.stat(d / "new").st_mode) == 0o600
    p.delete("new")
    assert p.get("new") is None


def test_env_provider():
    env = {"JUPYTER_GUARD_SECRET_AUDIT_KEY": "ef" * 32, "OTHER": "x"}
    p = EnvProvider(environ=env)
    assert p.variable("audit-key") == "JUPYTER_GUARD_SECRET_AUDIT_KEY"
    assert p.get("audit-key") == "ef" * 32
    assert p.get("nope") is None
    assert p.list_names() == ["audit_key"]
    assert load_audit_key(provider=p, key_name="audit-key") == bytes.fromhex("ef" * 32)
    with pytest.raises(CredentialError, match="read-only"):
        p.set("x", "y")
    with pytest.raises(AuditKeyError, match="missing"):
        load_audit_key(provider=p, key_name="other-key", create=False)
    with pytest.raises(CredentialError, match="read-only"):
        load_audit_key(provider=p, key_name="other-key", create=True)


def test_keyring_provider_with_an_explicit_backend(tmp_path):
    import keyring

    before = keyring.get_keyring()
    p = KeyringProvider(PLAINTEXT, file_path=str(tmp_path / "keyring.cfg"))
    assert p.get("audit-key") is None
    with pytest.raises(AuditKeyError):
        load_audit_key(provider=p, key_name="audit-key", create=False)
    key = load_audit_key(provider=p, key_name="audit-key", create=True)
    again = KeyringProvider(PLAINTEXT, file_path=str(tmp_path / "keyring.cfg"))
    assert load_audit_key(provider=again, key_name="audit-key", create=False) == key
    again.set("db-password", "pw")
    assert again.list_names() == ["audit-key", "db-password"]
    again.delete("db-password")
    again.delete("db-password")  # deleting what is not there is fine
    assert again.list_names() == ["audit-key"]
    assert keyring.get_keyring() is before  # the process-wide default is left alone


def test_fail_backend_is_refused():
    with pytest.raises(CredentialError, match="no keyring available"):
        KeyringProvider("keyring.backends.fail.Keyring")


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("nope.Backend", "cannot load"),
        ("keyrings.alt.file", "not a dotted class path|is not a class|cannot load"),
        ("collections.OrderedDict", "not a keyring backend"),
        ("PlaintextKeyring", "not a dotted class path"),
    ],
)
def test_bad_backend_names(backend, message):
    with pytest.raises(CredentialError, match=message):
        KeyringProvider(backend)


class PromptingKeyring(keyring.backend.KeyringBackend):
    """A backend that asks on the terminal, as some do."""

    priority = 1

    def get_password(self, service, username):
        return input("password: ")

    def set_password(self, service, username, password):
        input("password: ")

    def delete_password(self, service, username):
        input("password: ")


def test_a_backend_that_prompts_gets_a_clear_error_not_a_prompt():
    """With no stdin (as in CI and under a server), a prompt is an EOFError: wrapped."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[os.path.dirname(os.path.abspath(__file__)), _repo()]!r}
        from test_credentials import PromptingKeyring
        from jupyter_guard.credentials import KeyringProvider, load_audit_key
        from jupyter_guard.errors import CredentialError
        p = KeyringProvider("test_credentials.PromptingKeyring")
        try:
            load_audit_key(provider=p, key_name="audit-key", create=False)
        except CredentialError as exc:
            print("ERR", exc)
        """
    )
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # the backend may still print its prompt text, but nothing waits for an answer
    assert "ERR keyring backend 'test_credentials.PromptingKeyring' tried to prompt" in proc.stdout
    assert "never prompts" in proc.stdout


def _repo() -> str:
    pkg = os.path.dirname(os.path.abspath(jupyter_guard.credentials.__file__))
    return os.path.dirname(pkg)


@pytest.mark.filterwarnings("ignore:PBKDF2 without:DeprecationWarning")  # keyrings.alt's KDF
def test_encrypted_backend_needs_a_password_never_prompts(tmp_path):
    try:
        import Cryptodome  # noqa: F401
    except ImportError:
        pytest.importorskip("Crypto", reason="keyrings.alt's EncryptedKeyring needs pycryptodome")
    path = str(tmp_path / "crypted.cfg")
    backend = "keyrings.alt.file.EncryptedKeyring"
    with pytest.raises(CredentialError, match="would prompt.*password="):
        KeyringProvider(backend, file_path=path)
    p = KeyringProvider(backend, file_path=path, password="correct horse")
    key = load_audit_key(provider=p, key_name="audit-key", create=True)
    again = KeyringProvider(backend, file_path=path, password="correct horse")
    assert load_audit_key(provider=again, key_name="audit-key") == key
    with pytest.raises(CredentialError, match="wrong password"):
        KeyringProvider(backend, file_path=path, password="wrong")
    with open(path, encoding="utf-8") as f:
        assert key.hex() not in f.read()  # stored encrypted
