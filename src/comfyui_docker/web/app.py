"""`create_app(settings)`: the dashboard's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..services import Services
from ..settings import Settings


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app. With `services` (from `start`) the app shares them; else it makes its own."""
    svc = services or Services.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(title="ComfyUI-Docker dashboard", version=__version__, lifespan=lifespan)
    app.state.services = svc

    from .pages import router as pages_router

    app.include_router(pages_router)

    @app.get("/health", tags=["system"])
    async def health() -> dict[str, object]:
        """Liveness: the dashboard answers."""
        return {"status": "ok"}

    return app
