"""``connect("warehouse")``: a SQLAlchemy engine for a catalog data source, by name.

The secret never passes through the notebook: the kernel asks the server
(``POST {JUPYTER_GUARD_URL}/credential``) for the source's connection URL; the server checks
the kernel's user against the policy (action ``credential``), records the decision on the
audit log (who, which source, which cell) and answers with the URL rendered with the secret
from its providers (keyring, mounted files, environment), plus the secret values to mask.

In the kernel, :func:`connect`

* raises :class:`jupyter_guard.GuardDenied` on a refusal or any failure, with the server's
  message (who, what, why, whom to ask; or which source and which provider failed) — never a
  secret, and with no chained exception that could carry one;
* registers the secret values with the kernel's masker (:mod:`.masking`): from then on they
  are replaced by ``***`` in everything the kernel sends out;
* creates the engine with ``sqlalchemy.create_engine(url, **engine_kwargs)`` and remembers
  engine -> source name, so tables read through it are named ``<source>.<schema>.<table>``
  in the catalog (:mod:`.sql`), and ``pd.read_sql`` through it is governed by their labels.

Nothing is cached: every call asks the server, so a secret rotated in its provider is used
by the next ``connect`` with no restart of anything.
"""

from __future__ import annotations

from typing import Any

from ..errors import GuardDenied
from .engines import BrokeredSource, remember
from .guard import STATE, governed
from .masking import MASKER
from .report import read_entry, refusal_message

READER = "jupyter_guard.connect"

def connect(source: str, **engine_kwargs: Any) -> Any:
    """A SQLAlchemy engine for the catalog data source ``source``, its secret from the server.

    ``engine_kwargs`` go to ``sqlalchemy.create_engine`` (``pool_pre_ping=True``, ``echo=...``).
    Raises :class:`jupyter_guard.GuardDenied` when the policy refuses, the source is unknown,
    the secret cannot be had, or the engine cannot be made.
    """
    __tracebackhide__ = True  # IPython shows the user's line, not this frame
    if not isinstance(source, str) or not source.strip():
        raise TypeError(f"connect() takes the name of a catalog data source, not {source!r}")
    source = source.strip()
    guard = STATE.get("guard")
    if guard is None:
        raise GuardDenied(
            f"connect({source!r}) needs jupyter_guard's kernel guard, which is not loaded in this kernel. "
            "Open the notebook through JupyterLab (the server loads it), or run %load_ext jupyter_guard.kernel."
        )
    msg_id, cell_id = guard.request_ids()
    with governed():  # the HTTP call's own imports and file reads are not governed reads
        reply = guard.client.credential(source, msg_id=msg_id, cell_id=cell_id, justification=guard.justification)
    if reply.get("effect") == "justify" and reply.get("permitted") and guard.justification:
        guard.justification = None  # one justification, one use (as for reads)
    if not reply.get("permitted"):
        guard.report(_entry(reply, source, refused=True))
        raise GuardDenied(_refusal(reply, source), decision=_public(reply))
    if reply.get("access") == "brokered":  # only the guard connects: a handle for its SQL reads
        guard.report(_entry(reply, source))
        return BrokeredSource(source, str(reply.get("dialect") or ""))
    url = reply.get("url")
    if not isinstance(url, str) or not url:
        raise GuardDenied(f"the jupyter_guard server permitted source {source!r} but sent no connection URL; "
                          "tell your JupyterHub admin.")
    secrets = [s for s in (reply.get("secrets") or ()) if isinstance(s, str)]
    kernel = getattr(guard.shell, "kernel", None)
    MASKER.register(secrets, getattr(kernel, "session", None))  # before anything can print them
    engine = _engine(source, url, engine_kwargs)
    try:
        remember(engine, source)
    except TypeError:
        pass
    guard.report(_entry(reply, source))
    return engine


def _engine(source: str, url: str, engine_kwargs: dict) -> Any:
    __tracebackhide__ = True
    try:
        with governed():
            import sqlalchemy
            from sqlalchemy.engine import make_url

            parsed = make_url(url)
            if parsed.password:  # also mask what the URL itself carries, whatever the server listed
                MASKER.register([str(parsed.password)])
            return sqlalchemy.create_engine(parsed, **engine_kwargs)
    except ImportError as e:
        raise GuardDenied(
            f"connect({source!r}) needs SQLAlchemy and the database driver in this kernel's environment "
            f"({type(e).__name__}: {MASKER.mask_text(str(e))}); ask your admin to install them."
        ) from None
    except Exception as e:  # ArgumentError, NoSuchModuleError (driver missing), bad engine_kwargs ...
        raise GuardDenied(
            f"jupyter_guard could not make an engine for source {source!r}: "
            f"{type(e).__name__}: {MASKER.mask_text(str(e))}"
        ) from None


def _public(reply: dict) -> dict:
    """A decision without anything that could be a secret (it travels in the exception)."""
    return {k: v for k, v in reply.items() if k not in ("url", "secrets")}


def _refusal(reply: dict, source: str) -> str:
    if reply.get("message"):
        return refusal_message(reply)  # the server's words, plus how to justify when that would do
    reasons = " ".join(str(r) for r in reply.get("reasons") or ())
    return f"jupyter_guard refused the credential of data source {source!r}. {reasons}".strip()


def _entry(reply: dict, source: str, refused: bool = False) -> dict:
    return read_entry(reply, READER, f"source:{source}", rows=None, effect="deny" if refused else None,
                 action="credential")
