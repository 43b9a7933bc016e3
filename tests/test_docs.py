"""The admin guide documents every setting an admin can configure."""

from __future__ import annotations

import re
from pathlib import Path

from jupyter_guard.server.app import GuardApp
from jupyter_guard.settings import GuardSettings
from jupyter_guard.audit import SQLiteAuditStore
from jupyter_guard.credentials import EnvSecrets, FileSecrets, KeyringSecrets

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_config_trait_is_in_the_admin_guide():
    guide = (DOCS / "admin-guide.md").read_text()
    missing = [
        f"c.{cls.__name__}.{name}"
        for cls in (GuardApp, SQLiteAuditStore, FileSecrets, EnvSecrets, KeyringSecrets)
        for name in cls.class_own_traits(config=True)
        if f"c.{cls.__name__}.{name}" not in guide
    ]
    # the settings the server shares with the guard service, written as the server's
    missing += [f"c.GuardApp.{name}" for name in GuardSettings.class_own_traits(config=True)
                if f"c.GuardApp.{name}" not in guide]
    assert not missing, f"undocumented settings: {missing}"


def test_every_service_setting_is_in_the_hub_deployment_guide():
    from jupyter_guard.service.app import GuardService

    guide = (DOCS / "hub-deployment.md").read_text()
    missing = [f"c.GuardService.{name}" for name in GuardService.class_own_traits(config=True)
               if f"c.GuardService.{name}" not in guide]
    assert not missing, f"undocumented settings: {missing}"


def test_every_rest_route_is_in_the_admin_guide():
    from jupyter_guard.server.handlers import API, default_handlers

    guide = (DOCS / "admin-guide.md").read_text()
    for pattern, _ in default_handlers:
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", pattern[len(API) + 1 :])  # kernels/<kernel_id>
        assert f" {route}" in guide, route
