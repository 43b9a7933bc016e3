"""Who is calling the guard service: a name and groups from the Hub (or the OS), never from the caller.

``HubIdentity``: the token's owner from the Hub (``HubAuth.user_for_token``, which also checks
the token may access this service), and the owner's groups read with the service's own token
(scope ``read:users:groups``). Both answers are cached for at most ``ttl`` seconds, so taking
someone out of ``data-stewards`` reaches every decision -- new tokens, old tokens and running
kernels alike, since every decision is made here -- within that bound.

``TokenIdentity`` (no Hub, a shared machine under systemd): tokens the admin issued
(``jupyter guard service add-token USER``), kept as SHA-256 digests in a file only the service
reads; groups are the user's groups in the OS, re-read within ``ttl``.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...] = ()
    kind: str = "user"  # user | service


class _Expiring:
    """A small cache whose entries live ``ttl`` seconds."""

    def __init__(self, ttl: float):
        self.ttl, self._data = ttl, {}

    def get(self, key):
        hit = self._data.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        self._data.pop(key, None)
        return None

    def put(self, key, value):
        if len(self._data) > 100_000:  # bounded: drop the expired, then everything
            now = time.monotonic()
            self._data = {k: v for k, v in self._data.items() if v[0] > now} if len(self._data) < 200_000 else {}
        self._data[key] = (time.monotonic() + self.ttl, value)


class HubIdentity:
    """Callers identified by the JupyterHub this service is registered with."""

    def __init__(self, *, ttl: float, api_url: str | None = None, api_token: str | None = None,
                 service_name: str | None = None):
        from jupyterhub.services.auth import HubAuth

        self.api_url = (api_url or os.environ.get("JUPYTERHUB_API_URL") or "").rstrip("/")
        self.api_token = api_token or os.environ.get("JUPYTERHUB_API_TOKEN") or ""
        if not self.api_url or not self.api_token:
            raise ValueError("the guard service under JupyterHub needs JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN "
                             "(run it as a Hub-managed service, or set c.GuardService.auth = 'token')")
        kwargs = {}
        if service_name:
            kwargs["access_scopes"] = {f"access:services!service={service_name}"}
        self.auth = HubAuth(api_url=self.api_url, api_token=self.api_token, cache_max_age=int(ttl), **kwargs)
        self._groups = _Expiring(ttl)

    def describe(self) -> str:
        return f"JupyterHub at {self.api_url}"

    async def caller(self, token: str) -> Caller | None:
        model = await self.auth.user_for_token(token, sync=False)
        if not model:
            return None
        if self.auth.access_scopes and not self.auth.check_scopes(self.auth.access_scopes, model):
            return None
        kind = model.get("kind") or "user"
        name = model["name"]
        groups = await self.groups(name) if kind == "user" else ()
        return Caller(name, groups, kind)

    async def groups(self, name: str) -> tuple[str, ...]:
        cached = self._groups.get(name)
        if cached is not None:
            return cached
        from tornado.httpclient import AsyncHTTPClient

        resp = await AsyncHTTPClient().fetch(f"{self.api_url}/users/{quote(name, safe='')}",
                                             headers={"Authorization": f"token {self.api_token}"})
        groups = tuple(sorted(json.loads(resp.body).get("groups") or ()))
        self._groups.put(name, groups)
        return groups

    async def servers(self) -> list[dict]:
        """Every running single-user server the Hub knows: [{user, name, started, url}]."""
        from tornado.httpclient import AsyncHTTPClient

        resp = await AsyncHTTPClient().fetch(f"{self.api_url}/users?state=active&limit=10000",
                                             headers={"Authorization": f"token {self.api_token}"})
        users = json.loads(resp.body)
        users = users.get("items", users) if isinstance(users, dict) else users
        return [{"user": u["name"], "name": name, "started": s.get("started"), "url": s.get("url")}
                for u in users for name, s in (u.get("servers") or {}).items() if s.get("ready")]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenIdentity:
    """Callers identified by tokens the admin issued, without a Hub; groups from the OS."""

    def __init__(self, tokens_file: str, *, ttl: float):
        if not tokens_file:
            raise ValueError("c.GuardService.tokens_file is needed without a Hub (auth = 'token')")
        self.tokens_file, self.ttl = tokens_file, ttl
        self._tokens: dict[str, str] = {}
        self._stamp = None
        self._groups = _Expiring(ttl)

    def describe(self) -> str:
        return f"tokens in {self.tokens_file}"

    def _load(self) -> dict[str, str]:
        try:
            st = os.stat(self.tokens_file)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:  # re-read on change: a revoked token stops working at once
            with open(self.tokens_file, encoding="utf-8") as f:
                self._tokens = json.load(f)
            self._stamp = stamp
        return self._tokens

    async def caller(self, token: str) -> Caller | None:
        name = self._load().get(token_digest(token))
        if not name:
            return None
        groups = self._groups.get(name)
        if groups is None:
            groups = os_groups(name)
            self._groups.put(name, groups)
        return Caller(name, groups)


def os_groups(user: str) -> tuple[str, ...]:
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        return ()
    return tuple(sorted(grp.getgrgid(g).gr_name for g in os.getgrouplist(user, gid)))


def add_token(tokens_file: str, user: str) -> str:
    """Issue a new token for ``user`` in ``tokens_file`` (created 0600); returns the token, shown once."""
    token = secrets.token_urlsafe(32)
    tokens = {}
    if os.path.exists(tokens_file):
        with open(tokens_file, encoding="utf-8") as f:
            tokens = json.load(f)
    tokens[token_digest(token)] = user
    tmp = f"{tokens_file}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(tokens, f, indent=1)
    os.replace(tmp, tokens_file)
    return token
