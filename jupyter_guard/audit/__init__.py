"""Tamper-evident audit log: event model, HMAC chain, stores, group commit, verify, export.

Imports no web framework: the server, the CLI and tests use the same code.
"""

from .chain import VerifyResult
from .export import export_records
from .log import AuditLog
from .model import AuditEvent, AuditQuery, AuditRecord
from .postgres import PostgresAuditStore  # imports psycopg only when one is opened
from .store import AuditStore, SQLiteAuditStore

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "AuditStore",
    "PostgresAuditStore",
    "SQLiteAuditStore",
    "VerifyResult",
    "export_records",
]
