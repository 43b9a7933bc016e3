"""``jupyter guard catalog validate --check-access``: who besides the guard can read a
brokered dataset's files.

A brokered dataset is only as safe as its files' permissions: if a researcher's account can
open them, no guard is needed to read them raw. For each file of each brokered location this
reports whether it is owned by the service account, and whether anyone else can read it —
through the group or other mode bits (with every parent directory traversable) or through a
POSIX ACL entry; the same for a brokered SQLite source's database file. Database servers,
tables and object-store URIs cannot be checked from here: their roles or bucket policies are
the admin's to check (docs/admin-guide.md "Brokered reads").
"""

from __future__ import annotations

import glob
import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass

ACL_XATTR = "system.posix_acl_access"
# POSIX ACL xattr (Linux): a 4-byte version, then (tag u16, perm u16, id u32) entries
ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK = 0x02, 0x04, 0x08, 0x10
ACL_READ = 0x04


@dataclass(frozen=True)
class Finding:
    dataset: str
    path: str
    problem: str
    severe: bool = True  # False: a note (not checkable, or safe only by a parent directory)

    def __str__(self) -> str:
        return f"{'FAIL' if self.severe else 'note'} {self.dataset}: {self.path}: {self.problem}"


def check_access(catalog, brokered, service_user: str) -> tuple[list[Finding], int]:
    """(findings, files checked) for the datasets ``brokered`` says are brokered."""
    try:
        account = pwd.getpwnam(service_user)
    except KeyError:
        return [Finding("-", "-", f"no OS account {service_user!r} (the guard service's user)")], 0
    findings: list[Finding] = []
    checked = 0
    for ds in catalog.datasets.values():
        if not brokered(ds):
            continue
        for loc in ds.locations:
            if loc.kind != "path":
                findings.append(Finding(ds.name, loc.source, f"a {loc.kind} location: give only the service's credential "
                                        "read access (database role / bucket policy); not checked here", severe=False))
                continue
            files = _files(loc.pattern)
            if not files:
                findings.append(Finding(ds.name, loc.pattern, "no file matches yet (nothing to check)", severe=False))
            for path in files:
                checked += 1
                findings.extend(_check_file(ds.name, path, account))
    for src in catalog.sources.values():
        if not brokered(src.as_dataset()):
            continue
        if src.dialect != "sqlite":  # a server: its roles decide, not file modes
            findings.append(Finding(src.name, src.dialect, "a database server: let only the service's role log in "
                                    "and read (its password in the service's secrets alone); not checked here",
                                    severe=False))
            continue
        path = src.url.split(":///", 1)[-1].split("?", 1)[0]
        if path and os.path.exists(path):
            checked += 1
            findings.extend(_check_file(src.name, path, account))
        else:
            findings.append(Finding(src.name, path or src.url, "no database file yet (nothing to check)", severe=False))
    return findings, checked


def _files(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(pattern) for f in fs)
    if any(c in pattern for c in "*?["):
        return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [pattern] if os.path.exists(pattern) else []


def _check_file(dataset: str, path: str, account) -> list[Finding]:
    out = []
    st = os.stat(path)
    owner = _user(st.st_uid)
    if st.st_uid == 0 and account.pw_uid != 0:
        out.append(Finding(dataset, path, f"owned by root, not by the service user {account.pw_name}, who may not "
                                          "be able to read it; chown it to the service user"))
    elif st.st_uid != account.pw_uid:
        out.append(Finding(dataset, path, f"owned by {owner}, not by the service user {account.pw_name}: "
                                          f"{owner}'s processes can read it and change its permissions"))
    elif not st.st_mode & stat.S_IRUSR:
        out.append(Finding(dataset, path, f"the service user {account.pw_name} cannot read it (mode {_mode(st)})"))
    group_ok, other_ok = _reachable(path)
    if st.st_mode & stat.S_IROTH:
        if other_ok:
            out.append(Finding(dataset, path, f"readable by every user (mode {_mode(st)})"))
        else:
            out.append(Finding(dataset, path, f"world-readable (mode {_mode(st)}), safe only while a parent directory "
                                              "stays closed; chmod o-r it", severe=False))
    acl = _acl(path)
    # with an ACL, the mode's group bits are its mask; the owning group's own bits are in the ACL
    group_reads = _acl_group_reads(acl) if acl else bool(st.st_mode & stat.S_IRGRP)
    if group_reads and _group_has_others(st.st_gid, account):
        group = _group(st.st_gid)
        if group_ok:
            out.append(Finding(dataset, path, f"readable by group {group} (mode {_mode(st)})"))
        else:
            out.append(Finding(dataset, path, f"group-readable ({group}, mode {_mode(st)}), safe only while a parent "
                                              "directory stays closed; chmod g-r it", severe=False))
    for who in _acl_readers(acl, account):
        out.append(Finding(dataset, path, f"a POSIX ACL lets {who} read it (getfacl {path})"))
    return out


def _reachable(path: str) -> tuple[bool, bool]:
    """(group can reach, others can reach) the file: every parent directory searchable."""
    group = other = True
    d = os.path.dirname(os.path.abspath(path))
    while True:
        mode = os.stat(d).st_mode
        group = group and bool(mode & stat.S_IXGRP)
        other = other and bool(mode & stat.S_IXOTH)
        parent = os.path.dirname(d)
        if parent == d:
            return group, other
        d = parent


def _group_has_others(gid: int, account) -> bool:
    """True unless the group is the service user's own group with no other member."""
    try:
        g = grp.getgrgid(gid)
    except KeyError:
        return True
    members = set(g.gr_mem) - {account.pw_name}
    others_primary = any(p.pw_gid == gid and p.pw_uid != account.pw_uid for p in pwd.getpwall())
    return bool(members) or others_primary


def _acl(path: str) -> list[tuple[int, int, int]]:
    """The file's POSIX access ACL entries (tag, perm, id); [] when it has none."""
    try:
        raw = os.getxattr(path, ACL_XATTR)
    except (OSError, AttributeError):  # no ACL, or a file system without them
        return []
    return [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]


def _mask(entries) -> int:
    return next((perm for tag, perm, _ in entries if tag == ACL_MASK), ACL_READ)


def _acl_group_reads(entries) -> bool:
    return any(tag == ACL_GROUP_OBJ and perm & _mask(entries) & ACL_READ for tag, perm, _ in entries)


def _acl_readers(entries, account) -> list[str]:
    mask = _mask(entries)
    out = []
    for tag, perm, ident in entries:
        if not (perm & mask & ACL_READ):
            continue
        if tag == ACL_USER and ident != account.pw_uid:
            out.append(f"user {_user(ident)}")
        elif tag == ACL_GROUP:
            out.append(f"group {_group(ident)}")
    return out


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _mode(st) -> str:
    return oct(stat.S_IMODE(st.st_mode))[2:].rjust(4, "0")
