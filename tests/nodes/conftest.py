"""Fixtures for custom nodes: one stand-in image venv and the local wheels (per test session), and
per test a volume with Settings pointing ComfyUI at the fake's root run by that venv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from comfyui_docker.nodes.service import NodeService
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace
from fakes.comfyui_root.launch import FAKE_ROOT

from .kit import image_venv, pip_offline, standard_wheels


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standard_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def image_python(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    """ComfyUI's venv as the image has it (Python, torch 2.9.1 stand-in, tinydep 1.0)."""
    return image_venv(tmp_path_factory.mktemp("image") / "venv", wheels)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, wheels: Path) -> dict[str, str]:
    """pip in this test sees the local wheels only (not this machine's pip.conf or PyPI)."""
    for name in ("PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    env = pip_offline(wheels)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def make_settings(tmp_path: Path, image_python: Path) -> Callable[..., Settings]:
    def make(root: Path | None = None, python: Path | None = None, **extra: str) -> Settings:
        env = {
            "WORKSPACE_ROOT": str(root or tmp_path / "ws"),
            "COMFYUI_ROOT": str(FAKE_ROOT),
            "COMFYUI_PYTHON": str(python or image_python),
            **extra,
        }
        return Settings.from_env(env, cwd=tmp_path)

    return make


@pytest.fixture
def node_service(make_settings: Callable[..., Settings], offline: dict[str, str]) -> NodeService:
    settings = make_settings()
    workspace = Workspace(settings.workspace_root)
    workspace.init()
    return NodeService(settings, workspace, pip_timeout=120, git_timeout=30)
