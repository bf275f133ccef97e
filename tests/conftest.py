from __future__ import annotations

from pathlib import Path

import pytest

import ports
from comfyui_docker.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace_root(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def settings(workspace_root: Path) -> Settings:
    return Settings.from_env({"WORKSPACE_ROOT": str(workspace_root)}, cwd=workspace_root.parent)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (tests/ports.py)."""
    return ports.free_port()
