"""The wheel users install: one package with the prebuilt labextension and the enable config."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    (path,) = out.glob("jupyter_guard-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_the_prebuilt_labextension_and_enables_the_server_extension(wheel):
    names = wheel.namelist()
    data = next(n.split("/")[0] for n in names if ".data/" in n)
    labext = f"{data}/data/share/jupyter/labextensions/jupyter-guard"
    assert f"{labext}/package.json" in names
    assert any(n.startswith(f"{labext}/static/") and n.endswith(".js") for n in names)
    assert f"{labext}/install.json" in names
    config = json.loads(wheel.read(f"{data}/data/etc/jupyter/jupyter_server_config.d/jupyter_guard.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"jupyter_guard": True}}}
    pkg = json.loads(wheel.read(f"{labext}/package.json"))
    assert pkg["name"] == "jupyter-guard"


def test_wheel_carries_the_package_data_the_server_needs(wheel):
    names = set(wheel.namelist())
    for needed in (
        "jupyter_guard/default_policy.yaml",
        "jupyter_guard/event_schemas/audit/v1.yaml",
        "jupyter_guard/_version.py",
        "jupyter_guard/server/app.py",
        "jupyter_guard/server/openapi.yaml",
    ):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "jupyter-guard = jupyter_guard.cli:main" in wheel.read(entry_points).decode()
