"""REST API under /jupyter-guard/api/: thin translations from HTTP to the governance core.

The routes, their bodies and answers are described in ``../openapi.yaml`` (checked against
this table by a test, and used to validate every body in one place).
"""

from __future__ import annotations

from .audit import AuditExportHandler, AuditHandler, AuditVerifyHandler
from .base import API, AUTH_RESOURCE, KERNEL_ID, GuardHandler
from .catalog import CatalogHandler, CatalogLabelsHandler, DerivedHandler, ResolveHandler, StatusHandler
from .decisions import (
    AccessRequestHandler,
    DecideHandler,
    KernelClassificationHandler,
    KernelDerivedHandler,
    KernelCredentialHandler,
    KernelDecideHandler,
    KernelGovernanceHandler,
    KernelGovernancePurposeHandler,
    KernelKeysHandler,
    KernelPurposeHandler,
    KernelReadHandler,
)
from .notebooks import ExportPreviewHandler, NotebookSensitivityHandler

__all__ = ["API", "AUTH_RESOURCE", "GuardHandler", "default_handlers"]

default_handlers = [
    (f"{API}/status", StatusHandler),
    (f"{API}/catalog", CatalogHandler),
    (f"{API}/catalog/resolve", ResolveHandler),
    (f"{API}/catalog/labels", CatalogLabelsHandler),
    (f"{API}/decide", DecideHandler),
    (f"{API}/audit", AuditHandler),
    (f"{API}/audit/verify", AuditVerifyHandler),
    (f"{API}/audit/export", AuditExportHandler),
    (f"{API}/kernels/{KERNEL_ID}", KernelGovernanceHandler),
    (f"{API}/kernels/{KERNEL_ID}/purpose", KernelGovernancePurposeHandler),
    (f"{API}/access-requests", AccessRequestHandler),
    (f"{API}/notebook/sensitivity", NotebookSensitivityHandler),
    (f"{API}/export/preview", ExportPreviewHandler),
    (f"{API}/kernel/decide", KernelDecideHandler),
    (f"{API}/kernel/purpose", KernelPurposeHandler),
    (f"{API}/kernel/keys", KernelKeysHandler),
    (f"{API}/kernel/read", KernelReadHandler),
    (f"{API}/kernel/credential", KernelCredentialHandler),
    (f"{API}/kernel/classification", KernelClassificationHandler),
    (f"{API}/kernel/derived", KernelDerivedHandler),
    (f"{API}/derived", DerivedHandler),
]
