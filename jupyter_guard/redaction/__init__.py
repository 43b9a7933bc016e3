"""PII redaction with Presidio: detection tiers, column rules, free-text scanning.

Usable without a server (the kernel extension, the CLI and tests use it directly); imports
no web framework. Heavy parts (Presidio, spaCy, cryptography) load on first use, so
importing this package costs nothing in a kernel that never redacts.
"""

from __future__ import annotations

from .model import Finding, KeyRequired, RedactionError, RedactionReport

__all__ = [
    "Detector",
    "Finding",
    "KeyRequired",
    "RedactionError",
    "RedactionReport",
    "Redactor",
    "catalog_entry",
    "classify_frame",
    "decrypt_token",
    "generate_pseudonym_key",
    "redact_frame",
]

_LAZY = {
    "Detector": "detector",
    "Redactor": "frame",
    "redact_frame": "frame",
    "decrypt_token": "operators",
    "generate_pseudonym_key": "operators",
    "classify_frame": "classify",
    "catalog_entry": "classify",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
