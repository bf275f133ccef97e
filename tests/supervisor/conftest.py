"""A supervised fake ComfyUI (real subprocess) with short, injected timings."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from supervised import FAST, MakeService

from comfyui_docker.children.comfyui import comfyui_spec
from comfyui_docker.comfyui.client import ComfyUIClient
from comfyui_docker.events import EventBus
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor import Service, Timings
from comfyui_docker.workspace import Workspace
from fakes.comfyui_root.launch import FAKE_ROOT, free_port


@pytest.fixture
async def make_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeService]:
    session = aiohttp.ClientSession()
    made: list[Service] = []

    def make(mode: str = "", delay: float = 0.0, timings: Timings = FAST, **kw: object) -> Service:
        port = free_port()
        settings = Settings.from_env(
            {
                "WORKSPACE_ROOT": str(tmp_path / f"ws{len(made)}"),
                "COMFYUI_ROOT": str(FAKE_ROOT),
                "COMFYUI_PYTHON": sys.executable,
                "COMFYUI_INTERNAL_PORT": str(port),
                "COMFYUI_EXTRA_ARGS": "--cpu",
            }
        )
        ws = Workspace(settings.workspace_root)
        ws.init()
        client = ComfyUIClient(session, f"http://127.0.0.1:{port}")
        spec = comfyui_spec(settings, ws, client, timings=timings)
        env = {"FAKE_COMFYUI_MODE": mode, "FAKE_COMFYUI_START_DELAY": str(delay)}
        spec = type(spec)(**{**spec.__dict__, "env": {**__import__("os").environ, **env}})
        service = Service(spec, bus=EventBus(), log_dir=ws.logs, **kw)  # type: ignore[arg-type]
        made.append(service)
        return service

    yield make
    for service in made:
        await service.stop()
    await session.close()
