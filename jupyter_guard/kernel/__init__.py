"""The kernel guard: an IPython extension the server loads into every IPython kernel it starts.

The server starts IPython kernels with ``--IPKernelApp.extra_extensions=jupyter_guard.kernel``
and with ``JUPYTER_GUARD_URL`` / ``JUPYTER_GUARD_TOKEN`` in their environment, so this runs
before the first cell and survives restarts. It

* wraps the data readers (pandas, polars, pyarrow) and watches ``open()`` through an audit
  hook (:mod:`.hooks`), asking the server for a decision on every read target
  (:mod:`.client`) and applying it — deny, redact, allow (:mod:`.guard`);
* adds ``%guard`` (:mod:`.magics`): purpose, justification, status;
* stamps every ``execute_reply``'s metadata with ``{"jupyter_guard": {"guarded": true,
  "reads": [...]}}`` — what the cell read and redacted, counts only — which the server joins
  to the cell's audit record. A reply without the stamp tells the server the guard was off.

Loading is cheap: only the standard library is imported here. pandas is patched when it
is imported (a ``sys.meta_path`` post-import hook), Presidio when something must be redacted.

It is a guardrail and a sensor, not a security boundary: user code can unload it. See
docs/threat-model.md.
"""

from __future__ import annotations

import logging
from typing import Any

from .guard import STATE as _STATE  # kept in a submodule: survives %reload_ext of this package

log = logging.getLogger("jupyter_guard.kernel")


def load_ipython_extension(ip: Any) -> None:
    """Install the guard into this IPython shell (idempotent)."""
    if _STATE.get("shell") is ip:
        return
    if _STATE:
        unload_ipython_extension(_STATE["shell"])
    from .guard import Guard
    from .hooks import Hooks
    from .magics import guard_magic

    guard = Guard(ip)
    hooks = Hooks(guard)
    hooks.install()
    ip.register_magic_function(guard_magic(guard, hooks), "line", "guard")
    _STATE.update(shell=ip, guard=guard, hooks=hooks)
    if not getattr(ip, "custom_exceptions", ()):  # never replace a handler someone else set
        from ..errors import GuardDenied

        ip.set_custom_exc((GuardDenied,), _show_refusal)
        _STATE["custom_exc"] = True
    kernel = getattr(ip, "kernel", None)
    if kernel is not None:
        had_own = "finish_metadata" in vars(kernel)
        original = kernel.finish_metadata

        def finish_metadata(parent: Any, metadata: Any, reply_content: Any) -> Any:
            metadata = original(parent, metadata, reply_content)
            try:
                metadata["jupyter_guard"] = guard.stamp(parent)
            except Exception:  # reporting must never break the reply
                log.exception("jupyter_guard: could not stamp the execute_reply")
            return metadata

        kernel.finish_metadata = finish_metadata
        _STATE.update(kernel=kernel, finish=finish_metadata, original_finish=original if had_own else None)


def unload_ipython_extension(ip: Any) -> None:
    """Remove every hook (the audit hook is switched off: Python cannot remove one)."""
    if not _STATE:
        return
    _STATE["hooks"].uninstall()
    kernel = _STATE.get("kernel")
    if kernel is not None and vars(kernel).get("finish_metadata") is _STATE.get("finish"):
        if _STATE.get("original_finish") is not None:
            kernel.finish_metadata = _STATE["original_finish"]
        else:
            del kernel.finish_metadata
    try:
        _STATE["shell"].magics_manager.magics["line"].pop("guard", None)
    except Exception:
        pass
    if _STATE.get("custom_exc") and getattr(ip, "CustomTB", None) is not None:
        ip.set_custom_exc((), None)
    _STATE["guard"].client.close()
    _STATE.clear()


def _show_refusal(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list:
    """Show a GuardDenied as the answer it is: the researcher's own line and the message.

    The frames below the first one in jupyter_guard (the read hooks, the decision) are cut:
    IPython always shows the innermost frame, hidden or not, and guard internals would only
    distract from who/what/why/who-to-ask. The error reply keeps ename GuardDenied.
    """
    last = tb
    while last is not None and last.tb_next is not None and not _is_guard_frame(last.tb_next.tb_frame):
        last = last.tb_next
    if last is not None and last.tb_next is not None:
        last.tb_next = None
    stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)
    return stb


def _is_guard_frame(frame: Any) -> bool:
    return frame.f_globals.get("__name__", "").startswith("jupyter_guard.")


def current_guard() -> Any:
    """The loaded Guard, or None (for tests and tools)."""
    return _STATE.get("guard")
