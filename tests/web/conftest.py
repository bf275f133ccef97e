"""Fixtures for the dashboard backend: apps with and without a password, in-process clients, and
a real uvicorn server on 127.0.0.1 running in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app

from .fakes import FakePresets, FakeSupervisor

PASSWORD = "correct horse battery staple"


def make_settings(root: Path, **env: str) -> Settings:
    base = {"WORKSPACE_ROOT": str(root)}
    base.update(env)
    return Settings.from_env(base, cwd=root.parent)


def build(
    root: Path,
    *,
    password: str | None = None,
    presets: bool = True,
    supervisor: str | None = None,
    **env: str,
) -> tuple[FastAPI, Services]:
    if password:
        env["ACCESS_PASSWORD"] = password
    settings = make_settings(root, **env)
    svc = Services.create(settings)
    svc.workspace.init()
    if presets:
        svc.presets = FakePresets(svc.bus)
    if supervisor is not None:
        svc.supervisor = FakeSupervisor(supervisor)
    return create_app(settings, svc), svc


@contextlib.asynccontextmanager
async def client_for(app: FastAPI, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", **kwargs) as c:
            yield c


@pytest.fixture
def app_svc(tmp_path: Path) -> tuple[FastAPI, Services]:
    return build(tmp_path / "ws")


@pytest.fixture
async def client(app_svc: tuple[FastAPI, Services]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_svc[0]) as c:
        yield c


@pytest.fixture
def locked(tmp_path: Path) -> tuple[FastAPI, Services]:
    """An app with ACCESS_PASSWORD set."""
    return build(tmp_path / "ws", password=PASSWORD)


def token_of(app: FastAPI) -> str:
    token = app.state.dashboard.auth.api_token()
    assert token
    return str(token)


class LiveServer:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(200):
            if self.server.started:
                return self
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        raise TimeoutError("uvicorn did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


@pytest.fixture
def live() -> Callable[[FastAPI, int], LiveServer]:
    return LiveServer
