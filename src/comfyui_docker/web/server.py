"""The dashboard's HTTP server: uvicorn in the runtime's own event loop, on the dashboard's address.

`start` owns SIGTERM/SIGINT, so uvicorn's own signal handling is off. The client address is the
socket peer (or, behind our nginx, its X-Real-IP: see web/auth/policy.py): uvicorn would otherwise
take X-Forwarded-For from any local peer, and rotating it would dodge the login backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from ..errors import AppError
from ..settings import Settings


def dashboard_address(settings: Settings) -> tuple[str, int]:
    """Where the dashboard listens: loopback behind nginx, the public address without it."""
    if settings.enable_nginx:
        return "127.0.0.1", settings.dashboard_internal_port
    return settings.dashboard_host, settings.dashboard_port


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class DashboardServer:
    """uvicorn serving `app` in the running loop, without its own signal handling."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws_ping_interval=20,
            proxy_headers=False,
        )
        self.server = Server(config)
        self.url = f"http://{host}:{port}"
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def serve(cls, app: Any, settings: Settings) -> DashboardServer:
        """Listen on the dashboard's address (AppError when the port is taken); return once it does."""
        host, port = dashboard_address(settings)
        if not port_free(host, port):
            raise AppError(
                f"port {port} on {host} is already in use: the dashboard cannot listen",
                hint="stop the other program or set DASHBOARD_PORT",
            )
        server = cls(app, host, port)
        await server.start()
        return server

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="dashboard")
        while not self.server.started:
            if self.task.done():
                exc = self.task.exception() if not self.task.cancelled() else None
                raise AppError(f"the dashboard could not start: {exc or 'uvicorn stopped'}")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, SystemExit, asyncio.CancelledError):
                await self.task
