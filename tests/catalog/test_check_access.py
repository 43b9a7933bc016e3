"""``jupyter guard catalog validate --check-access``: real files, real owners and modes, a real
POSIX ACL (written as the kernel stores it, so no acl tools are needed); ``nobody`` plays the
guard service's account. Runs as root (CI does), which may chown."""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from conftest import write_catalog

from jupyter_guard.cli import main

SERVICE = "nobody"
DATASETS = """\
datasets:
  - name: vault
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [vault/*.csv, {table: warehouse.vault.*}]
  - name: open
    label: public
    steward: Ops <ops@example.org>
    locations: [open.csv]
sources:
  - name: clinic
    label: restricted
    access: brokered
    steward: Ops <ops@example.org>
    url: sqlite:///{db}
"""
POLICY = "roles: {}\ndefaults: {unlabeled: allow}\nrules:\n  - {name: r, labels: [public], effect: allow}\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root; CI runs as root")


def _acl(uid: int) -> bytes:
    """A POSIX access ACL granting user ``uid`` read (user::rw-, user:uid:r--, group::---, mask::r--, other::---)."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, uid), (0x04, 0, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.fixture
def tree():
    tmp_path = Path(tempfile.mkdtemp(prefix="jg-access-", dir="/tmp"))  # pytest's own tmp is 0700: closed to all
    try:
        yield _tree(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _tree(tmp_path):
    nobody = pwd.getpwnam(SERVICE)
    vault = tmp_path / "vault"
    vault.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(vault, 0o711)
    for name in ("good.csv", "open.csv", "rooted.csv", "acl.csv"):
        (vault / name).write_text("id\n1\n")
        os.chown(vault / name, nobody.pw_uid, nobody.pw_gid)
        os.chmod(vault / name, 0o600)
    os.chmod(vault / "open.csv", 0o644)
    os.chown(vault / "open.csv", nobody.pw_uid, 0)  # group root: root is in it, so the group bits count
    os.chown(vault / "rooted.csv", 0, 0)
    os.setxattr(vault / "acl.csv", "system.posix_acl_access", _acl(1))  # uid 1 (daemon) may read
    (tmp_path / "open.csv").write_text("id\n1\n")
    (vault / "clinic.db").write_bytes(b"")
    os.chmod(vault / "clinic.db", 0o644)  # the database file readable by every user: reported
    write_catalog(tmp_path / "catalog", DATASETS.replace("{db}", str(vault / "clinic.db")), POLICY)
    return tmp_path


def test_check_access_names_every_file_a_user_account_can_read(tree, capsys):
    code = main(["catalog", "validate", str(tree / "catalog"), "--root", str(tree), "--check-access",
                 "--service-user", SERVICE])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "vault/open.csv: readable by every user (mode 0644)" in err
    assert "vault/rooted.csv: owned by root, not by the service user nobody" in err
    assert f"vault/acl.csv: a POSIX ACL lets user {pwd.getpwuid(1).pw_name} read it" in err
    assert "good.csv" not in err  # 0600, the service's own
    assert "open.csv: " not in err.replace("vault/open.csv", "")  # a public, direct dataset is not checked
    assert "note vault: warehouse.vault.*: a table location" in out
    assert "vault/open.csv: readable by group root (mode 0644)" in err
    assert "FAIL clinic: " in err and "clinic.db: readable by every user (mode 0644)" in err
    assert "clinic.db: owned by root" in err
    assert "7 access problem(s) in 5 file(s)" in err
    os.chmod(tree, 0o700)  # no other account can reach the files now: the open mode is a note, not a failure
    main(["catalog", "validate", str(tree / "catalog"), "--root", str(tree), "--check-access", "--service-user", SERVICE])
    out, err = capsys.readouterr()
    assert "vault/open.csv: world-readable (mode 0644), safe only while a parent directory stays closed" in out
    assert "readable by every user" not in err


def test_a_tight_layout_passes(tree, capsys):
    for name in ("open.csv", "rooted.csv", "acl.csv", "clinic.db"):
        os.remove(tree / "vault" / name)
    assert main(["catalog", "validate", str(tree / "catalog"), "--root", str(tree), "--check-access",
                 "--service-user", SERVICE]) == 0
    out = capsys.readouterr().out
    assert "OK: 1 file(s) of 1 brokered dataset(s) readable only by nobody" in out
    assert "note clinic: " in out and "no database file yet" in out


def test_an_unknown_service_account_is_an_error(tree, capsys):
    assert main(["catalog", "validate", str(tree / "catalog"), "--root", str(tree), "--check-access",
                 "--service-user", "no-such-user-xyz"]) == 1
    assert "no OS account 'no-such-user-xyz'" in capsys.readouterr().err
