"""The frontend's Jest unit tests (labextension/src/__tests__), run as part of the suite.

They need Node.js and the frontend's node_modules, which ``pip install -e .`` installs when it
builds the labextension (hatch-jupyter-builder runs ``jlpm install``). Under CI a missing
toolchain fails; on a developer machine without Node.js the test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _jlpm() -> str | None:
    here = Path(sys.executable).with_name("jlpm")
    return str(here) if here.exists() else shutil.which("jlpm")


def test_jest_unit_tests_pass() -> None:
    jlpm = _jlpm()
    missing = None
    if jlpm is None:
        missing = "jlpm (from jupyterlab) is not installed"
    elif shutil.which("node") is None:
        missing = "Node.js is not installed"
    elif not (ROOT / "node_modules" / "jest").is_dir():
        missing = "node_modules/jest is missing (pip install -e '.[test]' runs jlpm install)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the Jest unit tests cannot run under CI: {missing}", pytrace=False)
        pytest.skip(missing)
    proc = subprocess.run(  # fixed argv, no shell
        [jlpm, "jest", "--ci", "--colors=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "FORCE_COLOR": "0"},
    )
    out = proc.stdout + proc.stderr
    summary = re.search(r"^Tests:\s+(.*)$", out, re.M)
    assert proc.returncode == 0, f"jest failed:\n{out[-6000:]}"
    assert summary and "failed" not in summary.group(1), out[-3000:]
    passed = re.search(r"(\d+) passed", summary.group(1))
    assert passed and int(passed.group(1)) >= 200, f"too few Jest tests ran: {summary.group(1)}"
    suites = re.search(r"^Test Suites:\s+(.*)$", out, re.M)
    assert suites and "failed" not in suites.group(1), out[-3000:]
