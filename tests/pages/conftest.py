from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app


@pytest.fixture
def ws_root(workspace_root: Path) -> Path:
    from comfyui_docker.workspace import Workspace

    Workspace(workspace_root).ensure()
    return workspace_root


@pytest.fixture
async def client(settings: Settings, ws_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as c,
    ):
        yield c
