"""The Nodes section in Chromium: a node that failed to import shows its error; a node installed
from a git URL streams pip's output live and appears with its commit; removing it works."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker.settings import Settings
from fakes.comfyui_root.launch import FAKE_ROOT
from nodes.kit import BareRepo, image_venv, node_folder, pip_offline, standard_wheels

from .conftest import needs_chromium
from .live import LiveApp

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    wheels = standard_wheels(tmp_path_factory.mktemp("wheels"))
    return image_venv(tmp_path_factory.mktemp("image") / "venv", wheels), wheels


@pytest.fixture
def live(tmp_path: Path, image: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApp]:
    python, wheels = image
    for key in ("PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in pip_offline(wheels).items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(
        {
            "WORKSPACE_ROOT": str(tmp_path / "ws"),
            "COMFYUI_ROOT": str(FAKE_ROOT),
            "COMFYUI_PYTHON": str(python),
        }
    )
    app = LiveApp(settings).start()
    try:
        yield app
    finally:
        app.stop()


def test_failed_import_install_and_remove(page: Any, live: LiveApp, tmp_path: Path) -> None:
    ws = live.services.workspace
    broken = node_folder(ws.custom_nodes, "broken_node", init="raise RuntimeError('needs a GPU driver')\n")
    ws.logs.mkdir(parents=True, exist_ok=True)
    (ws.logs / "comfyui.log").write_text(
        f"2026-12-04 10:00:00.000 [WARNING] Cannot import {broken} module for custom nodes: "
        "needs a GPU driver\n"
        "2026-12-04 10:00:00.000 Import times for custom nodes:\n"
        f"2026-12-04 10:00:00.000 [INFO]    0.0 seconds (IMPORT FAILED): {broken}\n"
    )
    repo = BareRepo(tmp_path, "ComfyUI-Browser")
    commit = repo.commit({"__init__.py": "NODE_CLASS_MAPPINGS = {}\n", "requirements.txt": "nodepkg==1.0\n"})
    page.on("dialog", lambda d: d.accept())
    page.goto(live.url + "/nodes")
    row = page.locator('.node-row[data-name="broken_node"]')
    row.wait_for()
    assert row.locator(".import-state").inner_text() == "import failed"
    assert row.locator(".node-error").inner_text() == "needs a GPU driver"

    page.fill("#node-url", repo.url)
    page.click("#node-install button[type=submit]")
    task = page.locator(".node-task")
    task.wait_for()
    page.wait_for_function(
        "document.querySelector('.node-task pre').textContent.includes('Successfully installed nodepkg-1.0')",
        timeout=60_000,
    )
    installed = page.locator('#volume-nodes .node-row[data-name="ComfyUI-Browser"]')
    installed.wait_for(timeout=60_000)
    assert commit[:10] in installed.inner_text()
    assert re.search(r"packages ok", installed.inner_text())
    page.watch.shot("nodes-installed")

    installed.locator("button", has_text="Remove").click()
    installed.wait_for(state="detached", timeout=30_000)
    assert not (ws.custom_nodes / "ComfyUI-Browser").exists()
    assert os.path.isdir(ws.custom_nodes / "broken_node")
    assert page.watch.errors == [], page.watch.errors
