"""`create_app(settings, services=None)`: the dashboard's FastAPI application.

With `services` (from `comfyui-docker start`) the app shares the runtime's bus, HTTP client,
preset service, supervisor and ComfyUI gateway, and leaves their lifecycle to their owner.
Without them the lifespan creates its own (event bus, one aiohttp session, the PresetService when
its module is there, a gateway without event relay) and closes them at shutdown. Either way the
app owns: the proxy's HTTP client, the system sampler and the one background task that publishes
system status.

Middleware, outermost first: CORS (only when CORS_ORIGINS is set; same-origin otherwise) ->
security headers (no framing) -> HEAD answered as GET (both headers.py) -> auth (login, Bearer,
CSRF, Host; see auth/) -> body limit (20 MB, 8 KiB for the login form; body.py) -> catch-all
(500 in the one error shape) -> the prepared preset list (`GET /api/presets`, see
api/preset_list.py) -> routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..services import Services
from ..settings import Settings
from . import errors, proxy
from .api.preset_list import PreparedLists, PresetListFastPath, invalidate_on_events
from .api.system import SystemSampler, publish_loop
from .auth import CSRF_HEADER, Auth, AuthMiddleware
from .body import BodyLimitMiddleware
from .headers import HeadAsGetMiddleware, SecurityHeadersMiddleware

log = logging.getLogger(__name__)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _start_presets(svc: Services) -> Any:
    """Create and start the PresetService when that subsystem is installed; None otherwise."""
    try:
        from ..downloads.service import PresetService
    except ImportError:
        log.info("preset service not available in this build")
        return None
    try:
        service = PresetService(svc.settings, svc.workspace, svc.bus, svc.http)
        await service.start()
        return service
    except Exception:
        log.exception("the preset service did not start; the Models page will say so")
        return None


@asynccontextmanager
async def _lifespan_for(app: FastAPI, svc: Services, own_services: bool) -> AsyncIterator[None]:
    owned_http = False
    owned_presets = False
    if own_services:
        if svc.http is None:
            svc.http = aiohttp.ClientSession()
            owned_http = True
        if svc.presets is None:
            svc.presets = await _start_presets(svc)
            owned_presets = svc.presets is not None
    app.state.proxy_session = proxy.make_session()
    owned_gateway = svc.comfyui is None
    if owned_gateway:  # `start` makes its own, with the WebSocket relay; without it, no relay
        from ..comfyui import ComfyUIClient, ComfyUIGateway

        svc.comfyui = ComfyUIGateway(
            ComfyUIClient(svc.http or app.state.proxy_session, svc.settings.comfyui_url)
        )
    background = [
        asyncio.create_task(publish_loop(svc, app.state.sampler), name="system-status"),
        asyncio.create_task(invalidate_on_events(svc.bus, app.state.preset_cache), name="preset-cache"),
    ]
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if owned_gateway:
            svc.comfyui = None
        await app.state.proxy_session.close()
        app.state.auth.sessions.close()
        if owned_presets:
            for name in ("close", "stop", "aclose"):
                func = getattr(svc.presets, name, None)
                if callable(func):
                    try:
                        await _maybe_await(func())
                    except Exception:
                        log.exception("closing the preset service failed")
                    break
            svc.presets = None
        if owned_http:
            await svc.http.close()
            svc.http = None


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app. With `services` (from `start`) the app shares them; else it makes its own."""
    own = services is None
    svc = services or Services.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _lifespan_for(app, svc, own):
            yield

    app = FastAPI(
        title="ComfyUI-Docker dashboard",
        version=__version__,
        lifespan=lifespan,
        description=(
            "The dashboard's API. With ACCESS_PASSWORD set, send the session cookie (log in at "
            "/login) or `Authorization: Bearer <token>` (the token is on the Settings page). "
            'Every error has the shape `{"error": {"code", "message", "hint"?, "details"?}}`.'
        ),
    )
    app.state.services = svc
    app.state.settings = settings
    app.state.auth = Auth(settings)
    app.state.sampler = SystemSampler()
    app.state.preset_cache = PreparedLists()
    app.state.proxy_session = None

    # innermost first: the preset list fast path runs after the login check and inside the catch-all
    app.add_middleware(PresetListFastPath, lists=app.state.preset_cache, services=svc)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(AuthMiddleware, auth=app.state.auth)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["authorization", "content-type", CSRF_HEADER, "hx-request", "hx-target"],
        )

    from . import auth as auth_routes
    from . import ws
    from .api import comfyui, health, logs, models, nodes, presets, run, workflows
    from .api import system as system_api
    from .pages import router as pages_router

    app.include_router(health.router)
    app.include_router(auth_routes.router)
    app.include_router(presets.router)
    app.include_router(models.router)
    app.include_router(workflows.router)
    app.include_router(nodes.router)
    app.include_router(system_api.router)
    app.include_router(comfyui.router)
    app.include_router(run.router)
    app.include_router(logs.router)
    app.include_router(ws.router)
    app.include_router(proxy.router)
    app.include_router(pages_router)
    errors.document_common_answers(app)
    return app
