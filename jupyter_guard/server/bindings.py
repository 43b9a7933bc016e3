"""Kernel bindings: the kernels the server starts, a per-kernel token bound to the user, the guard loaded in.

When the server starts a kernel it mints a random token bound to that kernel and to the user
whose request started it, and passes the token and the server's URL in the kernel's
environment (never through the notebook). IPython kernels also get
``--IPKernelApp.extra_extensions=jupyter_guard.kernel`` so the guard loads before the first
cell; both are part of the launch arguments, so manual and automatic restarts keep them.
Kernels of other languages start unchanged and are observed (and marked unguarded) on the
kernel channel.

The kernel authenticates its API calls with that token: the server's identity provider is
wrapped so a valid kernel token on a kernel route yields the bound user, and every other
request goes to the configured provider (JupyterHub's included) unchanged.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import os
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..masking import SecretMasker

TOKEN_HEADER = "X-Jupyter-Guard-Kernel"
EXTENSION = "jupyter_guard.kernel"
ENV_URL, ENV_TOKEN, ENV_KERNEL = "JUPYTER_GUARD_URL", "JUPYTER_GUARD_TOKEN", "JUPYTER_GUARD_KERNEL_ID"
ENV_NER_MODEL = "JUPYTER_GUARD_NER_MODEL"  # the admin's c.GuardApp.ner_model, for the kernel's Detector
ENV_BROKER = "JUPYTER_GUARD_BROKER_URL"  # where brokered reads are served (the service, or this server)

#: the user of the request being handled (set by the wrapped identity provider)
request_user: contextvars.ContextVar[Any] = contextvars.ContextVar("jupyter_guard_request_user", default=None)


#: refusals a binding keeps for the notebook's governance indicator (newest last)
MAX_DENIALS = 20
#: effects that hand data to the kernel (a justify decision counts when it was permitted)
_PERMITTING = ("allow", "redact", "justify")


@dataclass
class KernelBinding:
    """One kernel: whom it acts for, its declared purpose, and what it was decided so far.

    The purpose is the server's: ``%guard purpose`` (kernel route) and the notebook toolbar
    (user route) both set it here, and every decision for this kernel uses it. What the
    kernel was decided (datasets, refusals) is kept for the governance indicator; ``version``
    grows with every change so a client can tell whether anything changed.
    """

    kernel_id: str
    user: Any  # the jupyter_server User object of the request that started the kernel
    guardable: bool  # an IPython kernel that was told to load the guard
    notebook: str | None = None
    purpose: str | None = None
    token_hash: str = field(default="", repr=False)
    #: every secret value the server handed to this kernel (masked in its outputs and cell records)
    masker: SecretMasker = field(default_factory=SecretMasker, repr=False)
    version: int = 0
    #: its outputs pass the PII filter: it was handed data under a redact effect, or ran unguarded
    filter_outputs: bool = False
    #: dataset (or source) name -> {label, rank, effects, last_seq, permitted}
    datasets: dict[str, dict] = field(default_factory=dict, repr=False)
    denials: deque = field(default_factory=lambda: deque(maxlen=MAX_DENIALS), repr=False)

    def forget_reads(self) -> None:
        """After a restart the kernel holds nothing it read: the indicator starts afresh."""
        self.datasets.clear()
        self.denials.clear()
        self.filter_outputs = False
        self.version += 1

    def set_purpose(self, purpose: str | None) -> None:
        if purpose != self.purpose:
            self.purpose = purpose
            self.version += 1

    def note(self, decision: Any, *, rank: int, audit_seq: int | None, msg_id: str | None,
             cell_id: str | None, effect: str | None = None) -> None:
        """Remember one decision made for this kernel (a policy Decision; ``effect`` overrides
        its effect, e.g. ``error`` when a permitted credential could not be looked up)."""
        effect = effect or decision.effect
        permitted = decision.permitted and effect in _PERMITTING
        if permitted and effect == "redact":
            self.filter_outputs = True
        if decision.dataset is not None:
            entry = self.datasets.setdefault(
                decision.dataset, {"label": decision.label, "rank": rank, "effects": {}, "last_seq": None, "permitted": 0}
            )
            entry.update(label=decision.label, rank=rank)
            entry["effects"][effect] = entry["effects"].get(effect, 0) + 1
            entry["permitted"] += permitted
            if audit_seq is not None:
                entry["last_seq"] = audit_seq
        if effect == "deny" or (not permitted and effect in _PERMITTING):
            self.denials.append({
                "msg_id": msg_id or None, "cell_id": cell_id or None, "dataset": decision.dataset,
                "label": decision.label, "target": decision.target or "", "effect": effect,
                "message": decision.message(), "reasons": list(decision.reasons), "ask": decision.ask,
                "audit_seq": audit_seq, "time": _now(),
            })
        self.version += 1

    def governance(self, *, notebook: str | None, purposes: list[str], color_of: Callable[[str], str]) -> dict:
        """What the notebook's governance indicator shows (IKernelGovernance in the frontend)."""
        # a kernel without the guard asks nothing (and what it might ask is not the guard's)
        datasets = sorted(self.datasets.items(), key=lambda item: (-item[1]["rank"], item[0])) if self.guardable else []
        top = next(((n, d) for n, d in datasets if d["permitted"]), None)
        return {
            "kernel_id": self.kernel_id,
            "notebook": notebook,
            "guarded": self.guardable,
            "purpose": self.purpose,
            "purposes": purposes,
            "highest": {"label": top[1]["label"], "rank": top[1]["rank"], "color": color_of(top[1]["label"])} if top else None,
            "datasets": [
                {"dataset": name, "label": d["label"], "rank": d["rank"], "effects": dict(d["effects"]), "last_seq": d["last_seq"]}
                for name, d in datasets
            ],
            "denials": list(self.denials) if self.guardable else [],
            "version": self.version,
        }


class KernelBindings:
    """Which user each kernel acts for; looked up by the kernel's token (stored hashed)."""

    def __init__(self) -> None:
        self._by_token: dict[str, KernelBinding] = {}
        self._by_kernel: dict[str, KernelBinding] = {}

    def bind(self, kernel_id: str, user: Any, *, guardable: bool, notebook: str | None) -> str:
        self.unbind(kernel_id)
        token = secrets.token_urlsafe(32)
        binding = KernelBinding(kernel_id, user, guardable, notebook, token_hash=_hash(token))
        self._by_token[binding.token_hash] = binding
        self._by_kernel[kernel_id] = binding
        return token

    def unbind(self, kernel_id: str) -> None:
        old = self._by_kernel.pop(kernel_id, None)
        if old is not None:
            self._by_token.pop(old.token_hash, None)

    def by_token(self, token: str | None) -> KernelBinding | None:
        return self._by_token.get(_hash(token)) if token else None

    def by_kernel(self, kernel_id: str) -> KernelBinding | None:
        return self._by_kernel.get(kernel_id)

    def for_notebook(self, path: str) -> list[KernelBinding]:
        """The running kernels of one notebook (API path), oldest first."""
        return [b for b in self._by_kernel.values() if b.notebook == path]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hash(token: str) -> str:
    # tokens are 256-bit random: a hash keeps them out of memory dumps and makes lookup constant-time enough
    return hashlib.sha256(token.encode()).hexdigest()


def is_ipython_kernel(spec: Any) -> bool:
    argv = " ".join(getattr(spec, "argv", None) or [])
    return getattr(spec, "language", "").lower() == "python" and ("ipykernel" in argv)


def install_kernel_launch(app: Any) -> None:
    """Wrap the server's kernel manager so new kernels are bound and guarded."""
    km = app.serverapp.kernel_manager
    original = km.start_kernel

    async def start_kernel(*args: Any, kernel_id: str | None = None, path: str | None = None, **kwargs: Any) -> str:
        if kernel_id is not None and kernel_id in km:
            return await original(*args, kernel_id=kernel_id, path=path, **kwargs)
        kernel_id = kernel_id or str(uuid.uuid4())
        name = kwargs.get("kernel_name") or km.default_kernel_name
        try:
            spec = km.kernel_spec_manager.get_kernel_spec(name)
        except Exception:  # unknown spec: let jupyter_server report it its usual way
            spec = None
        guardable = spec is not None and is_ipython_kernel(spec)
        env = dict(kwargs.get("env") or os.environ)
        notebook = _api_path(env.get("JPY_SESSION_NAME"), app.root_dir)
        token = app.kernel_bindings.bind(kernel_id, request_user.get(), guardable=guardable, notebook=notebook)
        env.update({ENV_URL: app.kernel_api_url, ENV_TOKEN: token, ENV_KERNEL: kernel_id, ENV_BROKER: app.broker_url})
        if app.ner_model:
            env[ENV_NER_MODEL] = app.ner_model
        kwargs["env"] = env
        if guardable:
            kwargs["extra_arguments"] = [*kwargs.get("extra_arguments", []), f"--IPKernelApp.extra_extensions={EXTENSION}"]
        try:
            started = await original(*args, kernel_id=kernel_id, path=path, **kwargs)
        except BaseException:
            app.kernel_bindings.unbind(kernel_id)
            raise
        # an automatic restart after a crash bypasses restart_kernel: the restarter tells us
        km.add_restart_callback(started, lambda: _forget_reads(app, started), "restart")
        return started

    km.start_kernel = start_kernel

    # a shut-down kernel's token must stop working; a restarted kernel holds no data any more
    shutdown, restart = km.shutdown_kernel, km.restart_kernel

    async def shutdown_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = shutdown(kernel_id, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        finally:
            app.kernel_bindings.unbind(kernel_id)

    async def restart_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
        result = restart(kernel_id, *args, **kwargs)
        result = await result if inspect.isawaitable(result) else result
        _forget_reads(app, kernel_id)
        return result

    km.shutdown_kernel, km.restart_kernel = shutdown_kernel, restart_kernel


def _forget_reads(app: Any, kernel_id: str) -> None:
    binding = app.kernel_bindings.by_kernel(kernel_id)
    if binding is not None:
        binding.forget_reads()


def _api_path(os_path: str | None, root_dir: str) -> str | None:
    """The notebook's path as the contents API names it (relative to the server root)."""
    if not os_path:
        return None
    rel = os.path.relpath(os_path, root_dir)
    return os_path if rel.startswith("..") else rel.replace(os.sep, "/")


def install_identity(app: Any) -> None:
    """Wrap the identity provider: remember each request's user; accept kernel tokens on kernel routes."""
    provider = app.serverapp.identity_provider
    original = provider.get_user

    async def get_user(handler: Any) -> Any:
        token = handler.request.headers.get(TOKEN_HEADER)
        if token is not None and getattr(handler, "accepts_kernel_token", False):
            binding = app.kernel_bindings.by_token(token)
            if binding is None or binding.kernel_id not in app.serverapp.kernel_manager:
                return None  # a stale or forged kernel token authenticates nobody
            handler.kernel_binding = binding
            handler._token_authenticated = True  # header token, like jupyter_server's own: no XSRF
            user = binding.user or kernel_owner(app)
        else:
            user = original(handler)
            if inspect.isawaitable(user):
                user = await user
        request_user.set(user)
        return user

    provider.get_user = get_user


def kernel_owner(app: Any) -> Any:
    """A kernel started outside any request (e.g. by another extension) acts for the server owner."""
    from jupyter_server.auth.identity import User

    name = os.environ.get("JUPYTERHUB_USER") or app.owner_name()
    return User(username=name, name=name)
