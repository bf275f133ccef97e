"""Opt-in, with a real ComfyUI (COMFYUI_ROOT, COMFYUI_PYTHON) and PyPI: a node installed from a
local folder, whose requirement comes from PyPI, shows in /object_info after the runtime starts
again on the same volume with a fresh image venv (a new venv stands in for a new image), its
package imported from the volume's layer.

The venvs are made like the one COMFYUI_PYTHON is: `python -m venv` plus a `.pth` naming the
site-packages folders of COMFYUI_PYTHON, so torch & co. are there without copying gigabytes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from comfyui_docker.cli import main
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace
from fakes.comfyui_root.launch import free_port, real_comfyui_root

from .kit import node_folder
from .test_runtime import comfy_get, running

pytestmark = pytest.mark.real_comfyui

REQUIREMENT = "termcolor"  # tiny, pure Python, not in ComfyUI's venv
PROBE = f"""\
import {REQUIREMENT}

class LayerProbe:
    DESCRIPTION = {REQUIREMENT}.__file__
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{}}}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "tests"
    def run(self):
        return (self.DESCRIPTION,)

NODE_CLASS_MAPPINGS = {{"LayerProbe": LayerProbe}}
"""


def fresh_image(base: Path, like: Path) -> Path:
    """A new venv with the packages of `like` (through a .pth), but nothing of its own."""
    out = subprocess.run(
        [
            str(like),
            "-c",
            "import json, sys; print(json.dumps([p for p in sys.path if p.endswith('-packages')]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run([str(like), "-m", "venv", str(base)], check=True)
    python = base / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "image-packages.pth").write_text("\n".join(json.loads(out.stdout)) + "\n")
    return python


def test_a_volume_node_and_its_pypi_package_survive_a_new_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, why = real_comfyui_root()
    if root is None:
        pytest.skip(f"real ComfyUI: {why}")
    comfy_python = Path(os.environ.get("COMFYUI_PYTHON") or "")
    if not comfy_python.is_file():
        pytest.skip("COMFYUI_PYTHON must name the real ComfyUI's Python")
    ws = Workspace(tmp_path / "ws")
    ws.init()
    first = fresh_image(tmp_path / "image-1", comfy_python)
    extra = f"--database-url sqlite:///{tmp_path}/comfyui.db"

    def settings_for(python: Path) -> Settings:
        env = {
            "WORKSPACE_ROOT": str(ws.root),
            "COMFYUI_ROOT": str(root),
            "COMFYUI_PYTHON": str(python),
            "COMFYUI_EXTRA_ARGS": extra,
            "DASHBOARD_HOST": "127.0.0.1",
            "DASHBOARD_PORT": str(free_port()),
            "COMFYUI_INTERNAL_PORT": str(free_port()),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return Settings.from_env(env, cwd=tmp_path)

    settings = settings_for(first)
    source = node_folder(tmp_path / "src", "layer_probe", requirements=f"{REQUIREMENT}\n", init=PROBE)
    assert main(["nodes", "install", str(source)]) == 0
    layer_root = ws.python / next(p.name for p in ws.python.iterdir())
    assert any(p.name.startswith(REQUIREMENT) for p in layer_root.rglob("*.dist-info"))

    async def start_and_look(settings: Settings) -> tuple[str, str]:
        async with running(settings, ready_timeout=150) as services:
            detail = next(t.detail for t in services.timings if t.name == "custom nodes")
            info = comfy_get(settings, "/object_info/LayerProbe")
        return info["LayerProbe"]["description"], detail

    description, _ = asyncio.run(start_and_look(settings))
    assert description.startswith(str(layer_root))

    second = fresh_image(tmp_path / "image-2", comfy_python)  # a new image: same Python and torch
    description, detail = asyncio.run(start_and_look(settings_for(second)))
    assert description.startswith(str(layer_root)), "imported from the volume's layer"
    assert "installed" not in detail and "checked" not in detail  # the hash cache: nothing to do
    own = Path(
        subprocess.run(
            [str(second), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert not any(p.name.startswith(REQUIREMENT) for p in own.iterdir())
