"""jupyter_guard: data governance where researchers work.

Catalog sensitivity labels, policy decisions, PII redaction and a tamper-evident audit log,
as a Jupyter server extension with a JupyterLab frontend.
"""

from ._version import __version__
from .errors import GuardDenied

__all__ = ["GuardDenied", "__version__"]


def _jupyter_server_extension_points():
    from .app import GuardApp

    return [{"module": "jupyter_guard", "app": GuardApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-guard"}]
