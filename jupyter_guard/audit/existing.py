"""Open a log the server already keeps, from outside it (the CLI, the nbconvert preprocessor)."""

from __future__ import annotations

import os

from ..credentials import SecretProvider, load_audit_key
from ..errors import AuditError
from .log import AuditLog
from .store import SQLiteAuditStore


def open_existing_log(db: str, *, key_file: str | None = None, provider: SecretProvider | None = None,
                      key_name: str = "audit-key") -> AuditLog:
    """The audit log at ``db`` with its key; never creates a store or a key (a new chain that
    nobody could verify against the old one). Raises AuditError/AuditKeyError saying what is missing."""
    if not os.path.exists(db):
        raise AuditError(f"no audit database at {db}")
    key = load_audit_key(key_file=key_file, provider=provider, key_name=key_name, create=False)
    return AuditLog(SQLiteAuditStore(path=db), key)
