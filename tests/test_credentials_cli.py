"""`jupyter guard credentials set|list|delete` through the real entry point: values from stdin
or a file (never a prompt), names and providers listed (never values)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupyter_guard.credentials import CredentialChain, CredentialSettings

pytestmark = pytest.mark.filterwarnings("ignore:PBKDF2 without:DeprecationWarning")

ENCRYPTED = "keyrings.alt.file.EncryptedKeyring"
SECRET = "s3cr3t-Pa55!word"


def guard(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`jupyter guard ...` as an admin types it; no terminal (stdin is a pipe or /dev/null)."""
    return subprocess.run(  # noqa: PLW1510 - return codes are asserted
        [sys.executable, "-m", "jupyter", "guard", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def flags(tmp_path):
    return [
        "--keyring-backend", ENCRYPTED,
        "--keyring-file", str(tmp_path / "keyring.cfg"),
        "--keyring-password-env", "GUARD_KEYRING_PASSWORD",
        "--credential-dir", str(tmp_path / "mounted"),
    ]


ENV = {"GUARD_KEYRING_PASSWORD": "correct horse battery"}


def test_set_list_delete_round_trip_through_the_keyring(tmp_path, flags):
    out = guard("credentials", "set", "warehouse", "--provider", "keyring", *flags, stdin=SECRET + "\n", env=ENV)
    assert out.returncode == 0, out.stderr
    assert f"stored secret 'warehouse' in keyring ({ENCRYPTED}" in out.stdout
    assert SECRET not in out.stdout + out.stderr

    # the server's chain (same settings as the flags) finds it
    settings = CredentialSettings(
        directory=str(tmp_path / "mounted"), keyring_backend=ENCRYPTED,
        keyring_file=str(tmp_path / "keyring.cfg"), keyring_password_env="GUARD_KEYRING_PASSWORD",
    )
    chain = CredentialChain.from_settings(settings, environ=ENV)
    assert chain.lookup("warehouse", source="warehouse") == (SECRET, "keyring")  # trailing newline dropped
    assert SECRET not in (tmp_path / "keyring.cfg").read_text()

    out = guard("credentials", "list", *flags, env={**ENV, "JUPYTER_GUARD_SECRET_TOKEN": "env-value-1"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("warehouse") and f"keyring ({ENCRYPTED}" in line for line in lines), lines
    assert any(line.startswith("token") and "environment (JUPYTER_GUARD_SECRET_*)" in line for line in lines), lines
    assert SECRET not in out.stdout + out.stderr and "env-value-1" not in out.stdout + out.stderr

    # rotation: set again, the next lookup of the same chain gets the new value
    out = guard("credentials", "set", "warehouse", "--provider", "keyring", *flags, stdin="rotated-value", env=ENV)
    assert out.returncode == 0, out.stderr
    assert chain.lookup("warehouse") == ("rotated-value", "keyring")

    out = guard("credentials", "delete", "warehouse", *flags, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "deleted secret 'warehouse'" in out.stdout
    out = guard("credentials", "list", *flags, env=ENV)
    assert "warehouse" not in out.stdout
    out = guard("credentials", "delete", "warehouse", *flags, env=ENV)
    assert out.returncode == 1 and "no writable provider holds 'warehouse'" in out.stderr


def test_set_into_mounted_files_from_a_value_file_and_shadowing_is_said(tmp_path, flags):
    value = tmp_path / "value.txt"
    value.write_text("from-a-file\n")
    out = guard("credentials", "set", "warehouse", "--provider", "keyring", *flags, stdin="kr-value", env=ENV)
    assert out.returncode == 0, out.stderr
    # without --provider: the first writable provider in the order (file, env, keyring) that is on
    out = guard("credentials", "set", "warehouse", "--value-file", str(value), *flags, env=ENV)
    assert out.returncode == 0, out.stderr
    assert f"in files ({tmp_path / 'mounted'})" in out.stdout
    out = guard("credentials", "set", "warehouse", "--provider", "keyring", *flags, stdin="kr-value", env=ENV)
    assert out.returncode == 0 and "also holds 'warehouse'; lookups get that one" in out.stderr
    assert (tmp_path / "mounted" / "warehouse").read_text() == "from-a-file"
    assert oct((tmp_path / "mounted" / "warehouse").stat().st_mode & 0o777) == "0o600"
    out = guard("credentials", "list", *flags, env=ENV)
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("warehouse")]
    assert f"files ({tmp_path / 'mounted'})" in line and "also in: keyring" in line and "not used" in line
    assert "from-a-file" not in out.stdout and "kr-value" not in out.stdout
    out = guard("credentials", "delete", "warehouse", "--provider", "file", *flags, env=ENV)
    assert out.returncode == 0 and not (tmp_path / "mounted" / "warehouse").exists()


def test_an_empty_value_or_no_stdin_is_refused_and_nothing_prompts(tmp_path, flags):
    out = guard("credentials", "set", "warehouse", *flags, env=ENV)  # stdin is /dev/null: empty
    assert out.returncode == 2 and "empty" in out.stderr
    out = guard("credentials", "set", "warehouse", *flags, stdin="\n", env=ENV)
    assert out.returncode == 2 and "refusing to store an empty secret" in out.stderr
    out = guard("credentials", "set", "warehouse", "--value-file", str(tmp_path / "missing"), *flags, env=ENV)
    assert out.returncode == 2 and "cannot read" in out.stderr
    assert not (tmp_path / "mounted" / "warehouse").exists()


def test_errors_name_the_provider_and_never_hang(tmp_path, flags):
    out = guard("credentials", "set", "warehouse", "--provider", "keyring", *flags, stdin="v", env=ENV)
    assert out.returncode == 0, out.stderr
    out = guard("credentials", "list", *flags, env={"GUARD_KEYRING_PASSWORD": "wrong"})
    assert out.returncode == 2 and "wrong password" in out.stderr and ENCRYPTED in out.stderr
    out = guard("credentials", "list", *flags)  # password variable not set: no prompt, an error
    assert out.returncode == 2 and "GUARD_KEYRING_PASSWORD" in out.stderr and "not set" in out.stderr
    out = guard("credentials", "set", "x", "--keyring-backend", ENCRYPTED, "--keyring-file", str(tmp_path / "k2.cfg"),
                stdin="v")  # a password backend with no password configured
    assert out.returncode == 2 and "would prompt" in out.stderr
    out = guard("credentials", "set", "x", stdin="v")  # nothing writable is on
    assert out.returncode == 2 and "no writable provider is on" in out.stderr
    out = guard("credentials", "set", "../etc/passwd", "--credential-dir", str(tmp_path / "m"), stdin="v")
    assert out.returncode == 2 and "invalid secret name" in out.stderr
    out = guard("credentials", "list", "--providers", "file,vault")
    assert out.returncode == 2 and "unknown credential provider 'vault'" in out.stderr
