"""End to end: the jupyter-guard JupyterLab plugin in a real lab in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .lab_users import RESEARCHER_TOKEN

pytestmark = pytest.mark.ui

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "status-bar.png"
LAB_LOAD_TIMEOUT_MS = 60_000
STATUS_TIMEOUT_MS = 30_000
ANSWERED = re.compile(r"Guard: (unavailable|\d+ datasets?\b)")


def _open_lab(page: Any, lab_server: Any, token: str = RESEARCHER_TOKEN) -> None:
    """Open /lab as ``token``'s user; check the jupyter-guard labextension is offered."""
    page.goto(lab_server.url("/lab", token), timeout=LAB_LOAD_TIMEOUT_MS)
    config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
    extensions = [ext.get("name") for ext in config.get("federated_extensions", [])]
    assert "jupyter-guard" in extensions, (
        "the jupyter-guard labextension is not installed in this environment "
        f"(pip install -e . && jupyter labextension develop . --overwrite); found {extensions}"
    )
    page.locator("#jp-main-statusbar").wait_for(timeout=LAB_LOAD_TIMEOUT_MS)


def test_status_bar_shows_catalog(page: Any, lab_server: Any) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    _open_lab(page, lab_server)
    item = page.locator("#jp-main-statusbar .jp-guard-status")
    try:
        item.wait_for(timeout=STATUS_TIMEOUT_MS)
    except Exception as exc:  # playwright's TimeoutError
        raise AssertionError(
            "the jupyter-guard status item never appeared: the plugin did not load\n"
            + lab_server.log_tail()
        ) from exc

    # The item says "Guard: …" until the server's first answer.
    expect(item).to_have_text(ANSWERED, timeout=STATUS_TIMEOUT_MS)
    text = item.text_content() or ""
    title = item.get_attribute("title") or ""
    assert text == "Guard: 4 datasets · researcher", (
        f"status bar says {text!r}: {title}\n{lab_server.log_tail()}"
    )
    assert lab_server.catalog_dir.name in title  # the catalog directory
    assert "restricted" in title  # one of the labels

    ours = [e for e in errors if "guard" in e.lower()]
    assert not ours, f"browser errors from the plugin: {ours}"

    # Let the file browser and launcher settle so the screenshot shows a usable lab.
    page.locator(".jp-DirListing-item", has_text="data").wait_for(timeout=LAB_LOAD_TIMEOUT_MS)
    page.locator(".jp-Launcher").first.wait_for(timeout=LAB_LOAD_TIMEOUT_MS)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


def test_clicking_the_item_shows_the_status_json(page: Any, lab_server: Any) -> None:
    from playwright.sync_api import expect

    _open_lab(page, lab_server)
    item = page.locator("#jp-main-statusbar .jp-guard-status")
    expect(item).to_have_text(ANSWERED, timeout=STATUS_TIMEOUT_MS)
    assert item.text_content() == "Guard: 4 datasets · researcher", item.get_attribute("title")

    item.click()
    body = page.locator(".jp-Dialog .jp-guard-status-json")
    expect(body).to_be_visible(timeout=STATUS_TIMEOUT_MS)
    status = json.loads(body.text_content() or "{}")
    assert status["catalog"]["datasets"] == 4
    assert status["user"]["name"] == "rita" and status["user"]["steward"] is False
    assert Path(status["catalog"]["directory"]).resolve() == lab_server.catalog_dir.resolve()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(body).to_have_count(0)
