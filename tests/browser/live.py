"""A running dashboard for browser tests and the benchmark: uvicorn on 127.0.0.1 in a thread.

`LiveApp(settings, comfyui_url=...)` serves `create_app(settings)`; with `comfyui_url` it also
gives the app a ComfyUI gateway and starts its WebSocket relay (what `comfyui-docker start`
does), so generation progress arrives as events exactly as in production.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from ports import free_port


class LiveApp:
    def __init__(self, settings: Settings, *, comfyui_url: str | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.app.state.dashboard.services.workspace.init()
        self.comfyui_url = comfyui_url
        self.loop: asyncio.AbstractEventLoop | None = None
        original = self.app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(a: Any) -> AsyncIterator[Any]:
            async with original(a) as state:
                self.loop = asyncio.get_running_loop()
                if not self.comfyui_url:
                    yield state
                    return
                import aiohttp

                from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway

                svc = a.state.dashboard.services
                session = aiohttp.ClientSession()
                owned = svc.comfyui  # the app's own, without a relay
                svc.comfyui = ComfyUIGateway(ComfyUIClient(session, self.comfyui_url))
                svc.comfyui.start_events(svc.bus, retry=0.2, retry_cap=1.0)
                try:
                    yield state
                finally:
                    await svc.comfyui.stop_events()
                    svc.comfyui = owned
                    await session.close()

        self.app.router.lifespan_context = lifespan
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-dashboard", daemon=True)

    @property
    def services(self) -> Any:
        return self.app.state.dashboard.services

    def start(self, timeout: float = 20.0) -> LiveApp:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        return self

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func(*args)` on the server's event loop (the bus belongs to that loop)."""
        assert self.loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                func(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
