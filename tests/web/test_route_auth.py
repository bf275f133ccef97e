"""Every route of the app refuses an unauthenticated request when a password is set, except the
public ones (login, logout, health, nginx's verify, static assets)."""

from __future__ import annotations

import re

import aiohttp
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, Route, WebSocketRoute

from .conftest import client_for

PUBLIC = {"/login", "/logout", "/health", "/health/ready", "/auth/verify"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_http_route_refuses_unauthenticated(locked) -> None:
    app, _ = locked
    checked = 0
    async with client_for(app) as c:
        for route in iter_route_contexts(app.routes):
            original = route.original_route
            if isinstance(original, Mount):
                r = await c.get(route.path + "/does-not-exist.css")
                assert r.status_code == 404, route.path  # static assets are public: 404, not 401
                continue
            if not isinstance(original, APIRoute | Route):
                continue
            for method in sorted(route.methods or ()):
                if method == "HEAD":
                    continue
                path = concrete(route.path)
                r = await c.request(method, path, headers={"accept": "application/json"})
                if route.path in PUBLIC or route.path.startswith("/static/"):
                    # the route itself answers (the login form may say "wrong password"),
                    # never the middleware's refusal
                    assert "www-authenticate" not in r.headers, f"{method} {path} should be public"
                    continue
                assert r.status_code == 401, f"{method} {path} answered {r.status_code} without login"
                assert "www-authenticate" in r.headers
                assert r.json()["error"]["code"] == "unauthorized"
                # a browser asking for a page is sent to the login form instead
                r = await c.request(method, path, headers={"accept": "text/html"}, follow_redirects=False)
                if method == "GET" and not path.startswith("/api/"):
                    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
                else:
                    assert r.status_code == 401
                checked += 1
    assert checked > 30


async def test_every_websocket_route_refuses_unauthenticated(locked, live, free_port) -> None:
    app, _ = locked
    ws_paths = [
        r.path
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIWebSocketRoute | WebSocketRoute)
    ]
    assert set(ws_paths) >= {"/ws", "/api/comfyui/ws"}
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        for path in ws_paths:
            try:
                async with http.ws_connect(server.url + path):
                    raise AssertionError(f"{path} accepted an unauthenticated WebSocket")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 401, path
