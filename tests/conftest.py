"""Shared fixtures: a real jupyter_server with jupyter_guard, a catalog, and named users.

Users are told apart by token through a small IdentityProvider subclass (jupyter_server's
own extension point for identity, as JupyterHub uses); everything else is the real server.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_server.auth.identity import IdentityProvider, User

pytest_plugins = ["pytest_jupyter.jupyter_server"]

#: token -> (user name, groups)
USERS = {
    "tok-dana": ("dana", ["data-stewards"]),
    "tok-rita": ("rita", ["research"]),
    "tok-olaf": ("olaf", []),
}


@dataclass
class GroupedUser(User):
    groups: list = field(default_factory=list)


class TokenUsers(IdentityProvider):
    """Maps test tokens to named users with groups; other requests get the normal token check."""

    def get_user(self, handler):
        auth = handler.request.headers.get("Authorization", "")
        token = auth[len("token ") :] if auth.startswith("token ") else None
        if token in USERS:
            name, groups = USERS[token]
            handler._token_authenticated = True  # as the default provider marks token requests (no XSRF)
            return GroupedUser(username=name, name=name, groups=list(groups))
        return super().get_user(handler)


def auth(token: str) -> dict:
    return {"Authorization": f"token {token}"}


DATASETS = """\
datasets:
  - name: patients
    description: Synthetic patient registry
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations:
      - data/patients.csv
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
  - name: visits
    label: internal
    steward: Ops Team <ops@example.org>
    locations: [data/visits/*.csv]
  - name: clinics
    label: public
    steward: Ops Team <ops@example.org>
    locations: [data/clinics.csv]
  - name: hr
    label: confidential
    steward: {name: Hana HR, email: hana@example.org}
    locations:
      - table: warehouse.hr.*
      - uri: s3://hr-bucket/exports/*
"""

POLICY = """\
roles:
  steward: {users: [dana]}
  researcher: {groups: [research]}
defaults: {unlabeled: allow, no_rule: deny}
rules:
  - name: stewards
    roles: [steward]
    effect: allow
    check_purpose: false
  - name: public-open
    labels: [public]
    effect: allow
  - name: internal-researchers
    labels: [internal]
    roles: [researcher]
    effect: allow
  - name: confidential-redacted
    labels: [confidential]
    actions: [read, discover]
    effect: redact
  - name: confidential-export
    labels: [confidential]
    actions: [export]
    effect: justify
  - name: restricted-read
    labels: [restricted]
    actions: [read, discover]
    roles: [researcher]
    effect: redact
    require_purpose: true
  - name: restricted-export
    labels: [restricted]
    actions: [export, download]
    effect: deny
    message: Restricted data does not leave the workspace.
"""


def write_catalog(directory: Path, datasets: str = DATASETS, policy: str = POLICY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "datasets.yaml").write_text(textwrap.dedent(datasets))
    (directory / "policy.yaml").write_text(textwrap.dedent(policy))
    return directory


@pytest.fixture
def catalog_dir(tmp_path) -> Path:
    return write_catalog(tmp_path / "catalog")


@pytest.fixture
def audit_dir(tmp_path) -> Path:
    return tmp_path / "audit"


@pytest.fixture
def guard_config(catalog_dir, audit_dir) -> dict:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_guard": True},
            "identity_provider_class": TokenUsers,
        },
        "GuardApp": {
            "catalog_dir": str(catalog_dir),
            "audit_dir": str(audit_dir),
            "principal_source": "identity",
            "catalog_reload_interval": 0,
        },
    }


@pytest.fixture
def jp_server_config(guard_config):
    return guard_config


@pytest.fixture
def guard_app(jp_serverapp):
    """The running GuardApp instance inside the real server."""
    return jp_serverapp.web_app.settings["jupyter_guard"]


@pytest.fixture
def fetch_json(jp_fetch):
    async def _fetch(*parts, token="tok-rita", method="GET", body=None, params=None, expect=200):
        """The JSON answer; ``expect`` another status (e.g. 403, a refusal) to get its JSON body."""
        from tornado.httpclient import HTTPClientError

        kwargs = {"method": method, "headers": auth(token)}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        if params:
            kwargs["params"] = params
        try:
            response = await jp_fetch(*parts, **kwargs)
        except HTTPClientError as e:
            if e.code != expect:
                raise
            return json.loads(e.response.body)
        assert expect < 400, (parts, "expected", expect, "got", response.code)
        return json.loads(response.body)

    return _fetch
