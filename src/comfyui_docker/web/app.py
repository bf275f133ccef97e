"""`create_app(settings, services=None)`: the dashboard's FastAPI application.

With `services` (from `comfyui-docker start`) the app shares the runtime's bus, HTTP client,
preset service, supervisor and ComfyUI gateway, and leaves their lifecycle to their owner.
Without them the lifespan creates its own (event bus, one aiohttp session, the PresetService, a
gateway without event relay) and closes them at shutdown. Either way the app owns what its
`Dashboard` holds (dashboard.py: auth, the proxy's HTTP client, the system sampler, the prepared
preset lists) and the one background task that publishes system status.

Middleware, outermost first: CORS (only when CORS_ORIGINS is set; same-origin otherwise) ->
security headers (no framing) -> HEAD answered as GET (both headers.py) -> auth (login, Bearer,
CSRF, Host; see auth/) -> body limit (20 MB, 8 KiB for the login form; body.py) -> catch-all
(500 in the one error shape) -> the prepared preset list (`GET /api/presets`, see
api/preset_list.py) -> routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..downloads.service import PresetService
from ..services import Services
from ..settings import Settings
from . import errors, proxy
from .api.preset_list import PresetListFastPath, invalidate_on_events
from .auth import CSRF_HEADER, Auth, AuthMiddleware
from .body import BodyLimitMiddleware
from .dashboard import Dashboard
from .headers import HeadAsGetMiddleware, SecurityHeadersMiddleware
from .sampler import publish_loop

log = logging.getLogger(__name__)


async def _start_presets(svc: Services) -> PresetService | None:
    """Create and start this app's own PresetService; None (logged) when it cannot start."""
    try:
        service = PresetService(svc.settings, svc.workspace, svc.bus, svc.http)
        await service.start()
        return service
    except Exception:
        log.exception("the preset service did not start; the Models page will say so")
        return None


@asynccontextmanager
async def _lifespan_for(dashboard: Dashboard, own_services: bool) -> AsyncIterator[None]:
    svc = dashboard.services
    owned_http: aiohttp.ClientSession | None = None
    owned_presets: PresetService | None = None
    if own_services:
        if svc.http is None:
            svc.http = owned_http = aiohttp.ClientSession()
        if svc.presets is None:
            svc.presets = owned_presets = await _start_presets(svc)
    dashboard.proxy_session = proxy_session = proxy.make_session()
    owned_gateway = svc.comfyui is None
    if owned_gateway:  # `start` makes its own, with the WebSocket relay; without it, no relay
        from ..comfyui import ComfyUIClient, ComfyUIGateway

        svc.comfyui = ComfyUIGateway(ComfyUIClient(svc.http or proxy_session, svc.settings.comfyui_url))
    background = [
        asyncio.create_task(publish_loop(svc, dashboard.sampler), name="system-status"),
        asyncio.create_task(invalidate_on_events(svc.bus, dashboard.preset_lists), name="preset-cache"),
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
        dashboard.proxy_session = None
        await proxy_session.close()
        dashboard.auth.sessions.close()
        if owned_presets is not None:
            try:
                await owned_presets.close()
            except Exception:
                log.exception("closing the preset service failed")
            svc.presets = None
        if owned_http is not None:
            await owned_http.close()
            svc.http = None


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app. With `services` (from `start`) the app shares them; else it makes its own."""
    own = services is None
    svc = services or Services.create(settings)

    dashboard = Dashboard(services=svc, settings=settings, auth=Auth(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _lifespan_for(dashboard, own):
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
    app.state.dashboard = dashboard

    # innermost first: the preset list fast path runs after the login check and inside the catch-all
    app.add_middleware(PresetListFastPath, lists=dashboard.preset_lists, services=svc)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(AuthMiddleware, auth=dashboard.auth)
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
