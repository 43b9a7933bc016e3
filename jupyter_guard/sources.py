"""Data sources: a catalog source's connection URL, filled with its secret from the providers.

The server resolves a source for a kernel after the policy permitted the ``credential``
action; the kernel builds a SQLAlchemy engine from the URL and masks the secret values in
what it shows. This module imports no web framework (the CLI and tests use it as the server
does) and caches nothing: every resolution asks the providers again, so a rotated secret is
used by the next ``connect``.

Placeholders: ``{user}`` (the source's ``user``, or the ``user`` key of a JSON secret),
``{password}`` (the secret, or its ``password`` key), both URL-quoted with
``urllib.parse.quote(value, safe="")`` (SQLAlchemy decodes with unquote, so a space must be %20, not +); any other ``{name}`` comes from the key of that name in a JSON
secret, substituted as written (hosts, ports, database names, paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote


def _quote(value: str) -> str:
    return quote(value, safe="")

from .catalog.model import Source, render_url, url_placeholders
from .credentials import CredentialChain
from .errors import CredentialError

__all__ = ["MIN_EXTRA_SECRET", "ResolvedSource", "resolve_source", "secret_fields"]

#: values of a JSON secret's other keys shorter than this are not masked in outputs
#: (a port such as "5432" would otherwise turn into *** wherever it appears)
MIN_EXTRA_SECRET = 6
QUOTED = ("user", "password")


@dataclass(frozen=True)
class ResolvedSource:
    """A source ready to connect: never logged, never recorded, handed to one kernel."""

    name: str
    url: str
    secrets: tuple[str, ...]  # every value the kernel (and the server's output filter) must mask
    provider: str | None  # kind of the provider that held the secret; None when none was needed

    def __repr__(self) -> str:  # keep the URL (with its password) out of logs and tracebacks
        return f"<ResolvedSource {self.name} via {self.provider or 'no secret'}>"


def secret_fields(raw: str) -> dict[str, str] | None:
    """A secret that is a JSON object of strings (or numbers) as a mapping; None for a plain secret."""
    text = raw.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in data.items()
    ):
        return None
    return {k: str(v) for k, v in data.items()}


def resolve_source(source: Source, chain: CredentialChain) -> ResolvedSource:
    """The source's URL with its secret; CredentialError naming the source (and the provider)."""
    fields = url_placeholders(source.url)
    values: dict[str, str] = {}
    if source.user is not None:
        values["user"] = source.user
    secrets: list[str] = []
    provider = None
    if source.credential:
        raw, provider = chain.lookup(source.credential, source=source.name)
        structured = secret_fields(raw)
        if structured is None:
            values["password"] = raw
            secrets.append(raw)
        else:
            values.update(structured)
            for key, value in structured.items():
                if key == "user" or not value:
                    continue
                if key == "password" or len(value) >= MIN_EXTRA_SECRET:
                    secrets.append(value)
    missing = [f for f in dict.fromkeys(fields) if f not in values]
    if missing:
        where = f"secret {source.credential!r} (from the {provider} provider)" if source.credential else "the source"
        raise CredentialError(
            f"data source {source.name!r}: {where} gives no value for "
            f"{', '.join('{' + m + '}' for m in missing)} in its url ({source.file}:{source.line}); "
            "a JSON secret needs those keys"
        )
    filled = {k: _quote(v) if k in QUOTED else v for k, v in values.items() if k in fields}
    for value in list(secrets):
        quoted = _quote(value)
        if quoted != value:
            secrets.append(quoted)  # the form that appears in the URL
    url = render_url(source.url, filled)
    return ResolvedSource(source.name, url, tuple(dict.fromkeys(secrets)), provider)
