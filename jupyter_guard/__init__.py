"""jupyter_guard: data governance where researchers work.

Catalog sensitivity labels, policy decisions, PII redaction and a tamper-evident audit log,
as a Jupyter server extension with a JupyterLab frontend.
"""

from ._version import __version__
from .errors import GuardDenied

__all__ = ["GuardDenied", "__version__", "connect", "read"]


def __getattr__(name: str):
    # ``from jupyter_guard import connect`` in a kernel; imported on first use, so importing
    # jupyter_guard (the server, the CLI) does not import the kernel side or SQLAlchemy
    if name == "connect":
        from .kernel.connect import connect

        return connect
    if name == "read":  # jupyter_guard.read("patients", columns=[...], filters=[...])
        from .kernel.dataset_read import read_dataset

        return read_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points():
    from .server.app import GuardApp

    return [{"module": "jupyter_guard", "app": GuardApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-guard"}]
