"""Default locations shared by the server extension and the CLI, so both find the same log."""

from __future__ import annotations

import os

from jupyter_core.paths import jupyter_data_dir


def default_audit_dir() -> str:
    """``<jupyter data dir>/jupyter_guard``: local disk of the user running the server."""
    return os.path.join(jupyter_data_dir(), "jupyter_guard")


def default_audit_db(audit_dir: str | None = None) -> str:
    return os.path.join(audit_dir or default_audit_dir(), "audit.sqlite")


def default_key_file(audit_dir: str | None = None) -> str:
    return os.path.join(audit_dir or default_audit_dir(), "audit.key")
