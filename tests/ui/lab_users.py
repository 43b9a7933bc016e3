"""Named test users for the ``jupyter lab`` subprocess of the UI tests.

Loaded by the lab server as ``--ServerApp.identity_provider_class=lab_users.LabUsers`` (the
UI conftest puts this directory on its PYTHONPATH). Opening ``/lab?token=tok-rita`` logs the
browser in as rita: the token names the user, and the login cookie keeps the user and groups,
so one server serves a steward and a researcher in two browser contexts. The server's own
random token still works and acts as the OS user, as with the default provider.
"""

from __future__ import annotations

import json

from jupyter_server.auth.identity import IdentityProvider, User

STEWARD_TOKEN = "tok-dana"
RESEARCHER_TOKEN = "tok-rita"

#: token -> (username, groups); dana is a steward by the UI catalog's policy, rita a researcher
USERS = {
    STEWARD_TOKEN: ("dana", ["stewards"]),
    RESEARCHER_TOKEN: ("rita", ["research"]),
}


class LabUser(User):
    groups: list[str]

    def __init__(self, username: str, groups: list[str]):
        super().__init__(username=username, name=username, display_name=username.title())
        self.groups = list(groups)


class LabUsers(IdentityProvider):
    def get_user_token(self, handler):
        token = self.get_token(handler)
        if token in USERS:
            name, groups = USERS[token]
            handler._token_authenticated = True  # as the default provider marks token logins
            return LabUser(name, groups)
        return super().get_user_token(handler)

    def user_to_cookie(self, user: User) -> str:
        return json.dumps({"username": user.username, "groups": list(getattr(user, "groups", []) or [])})

    def user_from_cookie(self, cookie_value: str) -> User | None:
        data = json.loads(cookie_value)
        return LabUser(data["username"], data.get("groups", []))
