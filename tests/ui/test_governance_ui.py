"""End to end in real headless Chromium against a real ``jupyter lab`` with jupyter_guard.

The tests of this module share one lab server (module scope) and run in file order: the
researcher's notebook session leaves the reads, the denial and the access request that the
steward then finds in the audit viewer. Screenshots go to docs/img/ for the guides.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from .lab_users import RESEARCHER_TOKEN, STEWARD_TOKEN

pytestmark = pytest.mark.ui

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
LAB_LOAD_MS = 60_000
KERNEL_MS = 90_000
UI_MS = 30_000

NOTEBOOK = "analysis.ipynb"
CELLS = [
    'import pandas as pd\npatients = pd.read_csv("data/patients.csv")\npatients.head()',
    'print("contact: maria.gonzalez@example.com")',
    'salaries = pd.read_csv("hr/salaries.csv")',
]


def _notebook() -> str:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
         "outputs": [], "source": src}
        for i, src in enumerate(CELLS)
    ]
    return json.dumps({
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    })


@pytest.fixture(scope="module")
def lab(lab_server: Any) -> Any:
    (lab_server.root_dir / NOTEBOOK).write_text(_notebook())
    return lab_server


def open_lab(page: Any, lab: Any, token: str, path: str = "/lab") -> list[str]:
    """Open ``path`` as ``token``'s user; return the list that collects browser errors."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(lab.url(path, token), timeout=LAB_LOAD_MS)
    page.locator("#jp-main-statusbar .jp-guard-status").wait_for(timeout=LAB_LOAD_MS)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=LAB_LOAD_MS)
    return errors


def run_command(page: Any, command: str, args: dict | None = None) -> None:
    page.evaluate(
        "([id, args]) => { void window.jupyterapp.commands.execute(id, args); }", [command, args or {}]
    )


def shoot(page: Any, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / name))


def test_file_browser_shows_label_badges(page: Any, lab: Any) -> None:
    from playwright.sync_api import expect

    errors = open_lab(page, lab, RESEARCHER_TOKEN)
    listing = page.locator(".jp-DirListing-content")
    data = listing.locator(".jp-DirListing-item", has_text="data")
    badge = data.locator(".jp-guard-badge")
    expect(badge).to_have_attribute("data-guard-label", "restricted", timeout=UI_MS)
    assert "restricted" in (badge.text_content() or "")  # text, never colour alone
    readme = listing.locator(".jp-DirListing-item", has_text="README.txt")
    expect(readme).to_be_visible()
    expect(readme.locator(".jp-guard-badge")).to_have_count(0)

    data.dblclick()
    patients = listing.locator(".jp-DirListing-item", has_text="patients.csv")
    pbadge = patients.locator(".jp-guard-badge")
    expect(pbadge).to_have_attribute("data-guard-label", "restricted", timeout=UI_MS)
    expect(pbadge).to_have_attribute("data-guard-dataset", "patients")
    title = pbadge.get_attribute("title") or ""
    assert "Dana Steward" in title and "treatment-research" in title, title
    clinics = listing.locator(".jp-DirListing-item", has_text="clinics.csv").locator(".jp-guard-badge")
    expect(clinics).to_have_attribute("data-guard-label", "public", timeout=UI_MS)
    pbadge.hover()
    shoot(page, "file-badges.png")
    assert not errors, errors


def test_catalog_panel_lists_what_the_researcher_may_do(page: Any, lab: Any) -> None:
    from playwright.sync_api import expect

    errors = open_lab(page, lab, RESEARCHER_TOKEN)
    run_command(page, "jupyter-guard:open-catalog")
    panel = page.locator("#jp-guard-catalog")
    patients = panel.locator(".jp-guard-catalog-entry[data-dataset='patients']")
    expect(patients).to_be_visible(timeout=UI_MS)
    expect(patients.locator(".jp-guard-badge")).to_have_attribute("data-guard-label", "restricted")
    expect(patients.locator(".jp-guard-catalog-steward")).to_contain_text("Dana Steward")
    expect(patients.locator(".jp-guard-catalog-column[data-column='ssn']")).to_contain_text("US_SSN")
    expect(patients.locator("pre.jp-guard-snippet")).to_contain_text('pd.read_csv("data/patients.csv")')
    # without a purpose the restricted dataset is refused; previewing under one shows redacted
    read = patients.locator(".jp-guard-may-item[data-action='read']")
    expect(read).to_have_attribute("data-effect", "deny")
    panel.locator("select.jp-guard-catalog-purpose").select_option("treatment-research")
    expect(read).to_have_attribute("data-effect", "redact", timeout=UI_MS)

    panel.locator("input.jp-guard-catalog-search").fill("salar")
    expect(panel.locator(".jp-guard-catalog-entry")).to_have_count(1, timeout=UI_MS)
    salaries = panel.locator(".jp-guard-catalog-entry[data-dataset='salaries']")
    expect(salaries.locator("button.jp-guard-request-access")).to_be_visible()
    panel.locator("input.jp-guard-catalog-search").fill("")
    expect(panel.locator(".jp-guard-catalog-entry")).to_have_count(4, timeout=UI_MS)
    shoot(page, "catalog-panel.png")
    assert not errors, errors


def test_researcher_notebook_indicator_denial_and_export_review(page: Any, lab: Any) -> None:
    from playwright.sync_api import expect

    errors = open_lab(page, lab, RESEARCHER_TOKEN, f"/lab/tree/{NOTEBOOK}")
    indicator = page.locator(".jp-NotebookPanel .jp-guard-indicator")
    expect(indicator).to_be_visible(timeout=KERNEL_MS)
    expect(indicator).to_have_attribute("data-guard-label", "none", timeout=KERNEL_MS)

    # Declare the purpose the restricted dataset needs, from the indicator's picker.
    indicator.click()
    dialog = page.locator(".jp-Dialog .jp-guard-governance")
    expect(dialog).to_be_visible(timeout=UI_MS)
    purpose = dialog.locator("select.jp-guard-purpose-select")
    expect(purpose.locator("option[value='treatment-research']")).to_have_count(1, timeout=KERNEL_MS)
    purpose.select_option("treatment-research")
    expect(indicator).to_contain_text("treatment-research", timeout=UI_MS)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    # Run the notebook: a redacted read of restricted data, PII printed, then a denied read.
    run_command(page, "notebook:run-all-cells")
    expect(indicator).to_have_attribute("data-guard-label", "restricted", timeout=KERNEL_MS)
    expect(indicator).to_contain_text("1 dataset")

    # The denial names the steward to ask and offers Request access.
    toast = page.locator(".Toastify__toast", has_text="Hana HR")
    expect(toast).to_be_visible(timeout=KERNEL_MS)
    assert "salaries" in (toast.text_content() or "")
    shoot(page, "denial-notification.png")
    toast.get_by_role("button", name="Request access").click()
    request = page.locator(".jp-Dialog .jp-guard-request-dialog")
    expect(request).to_be_visible(timeout=UI_MS)
    assert "Hana HR" in (request.text_content() or "")
    request.locator("textarea.jp-guard-request-reason").fill("Pay-equity study approved by the ethics board (ref 2026-17)")
    page.locator(".jp-Dialog").get_by_role("button", name="Send request").click()
    expect(page.locator(".Toastify__toast", has_text="recorded")).to_be_visible(timeout=UI_MS)

    # Save, then ask to download: the review shows sensitivity and what is redacted.
    run_command(page, "docmanager:save")
    saved = lab.root_dir / NOTEBOOK
    for _ in range(300):  # the review reads the saved file: wait until the outputs are on disk
        try:
            outputs = [o for c in json.loads(saved.read_text())["cells"] for o in c.get("outputs", [])]
        except ValueError:  # caught mid-write
            outputs = []
        if "maria.gonzalez@example.com" in json.dumps(outputs):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"the notebook was not saved with its outputs: {saved.read_text()[:2000]}")
    run_command(page, "docmanager:download")
    review = page.locator(".jp-Dialog .jp-guard-export-review")
    expect(review).to_be_visible(timeout=KERNEL_MS)
    expect(review.locator(".jp-guard-export-label")).to_have_attribute("data-guard-label", "restricted")
    expect(review.locator(".jp-guard-export-effect")).to_have_attribute("data-effect", "redact")
    email = review.locator(".jp-guard-export-entity[data-entity='EMAIL_ADDRESS']")
    expect(email).to_be_visible()
    assert re.search(r"EMAIL_ADDRESS\D*[1-9]", email.text_content() or ""), email.text_content()
    shoot(page, "export-review.png")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-reject").click()
    expect(review).to_have_count(0)
    ours = [e for e in errors if "guard" in e.lower()]
    assert not ours, ours


def test_steward_sees_the_read_in_the_audit_viewer(page: Any, lab: Any) -> None:
    from playwright.sync_api import expect

    errors = open_lab(page, lab, STEWARD_TOKEN)
    run_command(page, "jupyter-guard:open-audit-viewer")
    viewer = page.locator("#jp-guard-audit")
    expect(viewer).to_be_visible(timeout=UI_MS)
    rows = viewer.locator(".jp-guard-audit-row")
    expect(rows.first).to_be_visible(timeout=UI_MS)

    filters = viewer.locator(".jp-guard-audit-filters")
    filters.locator("[name=user]").fill("rita")
    filters.locator("[name=dataset]").fill("patients")
    filters.locator("[name=event_type]").select_option("cell_execution")
    viewer.locator(".jp-guard-audit-apply").click()
    first = rows.first
    expect(first).to_contain_text("patients", timeout=UI_MS)
    first.click()
    code = viewer.locator(".jp-guard-audit-detail pre.jp-guard-audit-code")
    expect(code).to_contain_text('pd.read_csv("data/patients.csv")', timeout=UI_MS)
    expect(viewer.locator(".jp-guard-audit-timeline .jp-guard-timeline-item").first).to_be_visible(timeout=UI_MS)
    expect(viewer.locator(".jp-guard-audit-verify")).to_have_attribute("data-state", "ok", timeout=UI_MS)
    shoot(page, "audit-viewer.png")

    # The researcher's access request is there for the steward.
    filters.locator("[name=dataset]").fill("")
    filters.locator("[name=event_type]").select_option("access_request")
    viewer.locator(".jp-guard-audit-apply").click()
    expect(rows.first).to_contain_text("salaries", timeout=UI_MS)
    rows.first.click()
    expect(viewer.locator(".jp-guard-audit-detail")).to_contain_text("Pay-equity study", timeout=UI_MS)
    ours = [e for e in errors if "guard" in e.lower()]
    assert not ours, ours


def test_researcher_cannot_open_the_audit_viewer(page: Any, lab: Any) -> None:
    from playwright.sync_api import expect

    open_lab(page, lab, RESEARCHER_TOKEN)
    page.wait_for_timeout(1000)  # the plugin asks the server who the user is
    visible = page.evaluate("() => window.jupyterapp.commands.isVisible('jupyter-guard:open-audit-viewer')")
    assert visible is False
    run_command(page, "jupyter-guard:open-audit-viewer")
    dialog = page.locator(".jp-Dialog", has_text="Audit log is for data stewards")
    expect(dialog).to_be_visible(timeout=UI_MS)
    assert "not a data steward" in (dialog.text_content() or "")
    expect(page.locator("#jp-guard-audit")).to_have_count(0)
