"""/auth/verify with `X-Auth-Scope: dashboard-api`: nginx's own route for /api/comfyui/* on the
dashboard's port must refuse exactly what the dashboard's middleware refuses on that path."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from comfyui_docker.web.auth import API_SCOPE, SCOPE_HEADER

from .conftest import PASSWORD, build, client_for, token_of

HOST = "pod-8080.proxy.runpod.net"
FOREIGN = "https://other-8080.proxy.runpod.net"
ORIGINS: dict[str, str | None] = {
    "none": None,
    "same": f"https://{HOST}",
    "foreign": FOREIGN,
    "null": "null",
}
CREDENTIALS = ("none", "bad-token", "token", "session", "forged-cookie")
CSRF = ("none", "right", "wrong")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def dead_port() -> str:
    from ports import free_port

    return str(free_port())  # closed again, and given to no one else: nothing listens there


@pytest.fixture
def locked_dead(tmp_path: Path) -> tuple[FastAPI, str]:
    """A password set, ComfyUI's port closed: an allowed proxy request ends in 503, never 401/403."""
    app, _ = build(tmp_path / "ws", password=PASSWORD, COMFYUI_INTERNAL_PORT=dead_port())
    return app, token_of(app)


async def session_cookies(c: httpx.AsyncClient) -> tuple[str, str]:
    r = await c.post("/login", data={"password": PASSWORD, "next": "/"}, headers={"host": HOST})
    assert r.status_code == 303
    return r.cookies["cd_session"], r.cookies["cd_csrf"]


def request_headers(
    cred: str, csrf: str, origin: str | None, token: str, cookies: tuple[str, str], ip: int
) -> dict[str, str]:
    h = {"host": HOST, "x-real-ip": f"192.0.2.{ip % 250 + 1}"}  # own address: no rate limit here
    if cred == "token":
        h["authorization"] = f"Bearer {token}"
    elif cred == "bad-token":
        h["authorization"] = "Bearer not-the-token"
    elif cred == "session":
        h["cookie"] = f"cd_session={cookies[0]}; cd_csrf={cookies[1]}"
    elif cred == "forged-cookie":
        h["cookie"] = "cd_session=forged; cd_csrf=" + cookies[1]
    if csrf == "right":
        h["x-csrf-token"] = cookies[1]
    elif csrf == "wrong":
        h["x-csrf-token"] = "0" * 32
    if origin is not None:
        h["origin"] = origin
    return h


def verdict(status: int) -> str:
    return {401: "401", 403: "403", 429: "401"}.get(status, "pass")


async def test_scoped_verify_matches_the_middleware_on_api_comfyui(locked_dead) -> None:
    app, token = locked_dead
    cases = list(itertools.product(CREDENTIALS, CSRF, ORIGINS, METHODS))
    async with client_for(app, cookies=None) as c:
        cookies = await session_cookies(c)
        c.cookies.clear()
        for ip, (cred, csrf, origin_name, method) in enumerate(cases):
            h = request_headers(cred, csrf, ORIGINS[origin_name], token, cookies, ip)
            direct = await c.request(method, "/api/comfyui/prompt", headers=h, content=b"{}")
            checked = await c.get(
                "/auth/verify", headers={**h, "x-original-method": method, SCOPE_HEADER: API_SCOPE}
            )
            case = (cred, csrf, origin_name, method)
            assert verdict(direct.status_code) == verdict(checked.status_code), (
                case,
                direct.status_code,
                checked.status_code,
            )
            if checked.status_code != 204:
                assert checked.json()["error"]["code"] in ("unauthorized", "csrf_failed"), case
                if direct.status_code in (401, 403) and method != "HEAD":
                    assert checked.json()["error"]["code"] == direct.json()["error"]["code"], case
            else:
                assert direct.status_code == 503, case  # allowed: the proxy tried the closed port


async def test_scope_differs_from_the_port_rule_only_by_the_csrf_token(locked_dead) -> None:
    """Whatever the unscoped check (ComfyUI's port) refuses, the scoped one refuses too, except a
    cookie session's change that carries the right X-CSRF-Token and no Origin: the dashboard has
    CSRF tokens, ComfyUI's port has none (there a missing Origin needs Sec-Fetch-Site instead).
    nginx overwrites the scope header on both ports, so a client cannot choose the rule."""
    app, token = locked_dead
    async with client_for(app) as c:
        cookies = await session_cookies(c)
        c.cookies.clear()
        looser = 0
        for ip, (cred, csrf, origin_name, method) in enumerate(
            itertools.product(CREDENTIALS, CSRF, ORIGINS, METHODS)
        ):
            h = request_headers(cred, csrf, ORIGINS[origin_name], token, cookies, ip)
            h["x-original-method"] = method
            plain = (await c.get("/auth/verify", headers=h)).status_code
            scoped = (await c.get("/auth/verify", headers={**h, SCOPE_HEADER: "Dashboard-API "})).status_code
            case = (cred, csrf, origin_name, method)
            if plain != 204 and scoped == 204:
                assert case[:3] == ("session", "right", "none") and method not in ("GET", "HEAD"), case
                looser += 1
            elif plain != 204:
                assert scoped == plain, case
        assert looser == 4  # POST, PUT, PATCH, DELETE
        # a first-party fetch (Sec-Fetch-Site) without the token: the port lets it pass, the
        # dashboard wants its CSRF token; an unknown scope changes nothing
        h = request_headers("session", "none", None, token, cookies, 1)
        h["x-original-method"] = "POST"
        h["sec-fetch-site"] = "same-origin"
        assert (await c.get("/auth/verify", headers={**h, SCOPE_HEADER: "other"})).status_code == 204
        assert (await c.get("/auth/verify", headers={**h, SCOPE_HEADER: API_SCOPE})).status_code == 403


async def test_scoped_verify_cookie_post_needs_the_csrf_token(locked_dead) -> None:
    app, token = locked_dead
    async with client_for(app) as c:
        session, csrf = await session_cookies(c)
        c.cookies.clear()
        base = {
            "host": HOST,
            "cookie": f"cd_session={session}",
            "x-original-method": "POST",
            SCOPE_HEADER: API_SCOPE,
        }
        r = await c.get("/auth/verify", headers=base)
        assert r.status_code == 403
        error = r.json()["error"]
        assert (error["code"], error["message"]) == ("csrf_failed", "missing or wrong CSRF token")
        assert r.headers["cache-control"] == "no-store"
        assert (await c.get("/auth/verify", headers={**base, "x-csrf-token": csrf})).status_code == 204
        assert (await c.get("/auth/verify", headers={**base, "origin": f"https://{HOST}"})).status_code == 204
        r = await c.get("/auth/verify", headers={**base, "x-original-method": "GET"})
        assert r.status_code == 204  # reads need no token
        bearer = {"host": HOST, "authorization": f"Bearer {token}", SCOPE_HEADER: API_SCOPE}
        r = await c.get(
            "/auth/verify", headers={**bearer, "x-original-method": "DELETE", "origin": "https://x.example"}
        )
        assert r.status_code == 204  # Bearer clients need no CSRF token
        r = await c.get(
            "/auth/verify", headers={"host": HOST, "x-original-method": "GET", SCOPE_HEADER: API_SCOPE}
        )
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


async def test_scoped_verify_websocket_rule(locked_dead) -> None:
    """The middleware's WebSocket check: a login, and our own Origin for cookie sessions."""
    app, token = locked_dead
    async with client_for(app) as c:
        session, _ = await session_cookies(c)
        c.cookies.clear()
        ws = {
            "host": HOST,
            "x-original-method": "GET",
            "x-original-upgrade": "websocket",
            SCOPE_HEADER: API_SCOPE,
        }
        foreign = {"origin": FOREIGN}
        cookie = {"cookie": f"cd_session={session}"}
        assert (
            await c.get("/auth/verify", headers={**ws, **cookie, "origin": f"https://{HOST}"})
        ).status_code == 204
        r = await c.get("/auth/verify", headers={**ws, **cookie, **foreign})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        # the same GET without the upgrade is a plain read: the foreign Origin does not matter
        plain = {k: v for k, v in ws.items() if k != "x-original-upgrade"}
        assert (await c.get("/auth/verify", headers={**plain, **cookie, **foreign})).status_code == 204
        bearer = {"authorization": f"Bearer {token}"}
        assert (await c.get("/auth/verify", headers={**ws, **bearer, **foreign})).status_code == 204
        assert (await c.get("/auth/verify", headers=ws)).status_code == 401


async def test_scoped_verify_without_password_still_refuses_cross_site(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "ws", COMFYUI_INTERNAL_PORT=dead_port())
    async with client_for(app) as c:
        scoped = {"host": HOST, SCOPE_HEADER: API_SCOPE}
        assert (
            await c.get("/auth/verify", headers={**scoped, "x-original-method": "POST"})
        ).status_code == 204
        r = await c.get("/auth/verify", headers={**scoped, "x-original-method": "POST", "origin": FOREIGN})
        assert r.status_code == 403
        ws = {**scoped, "x-original-method": "GET", "x-original-upgrade": "websocket"}
        assert (await c.get("/auth/verify", headers={**ws, "origin": FOREIGN})).status_code == 403
        assert (await c.get("/auth/verify", headers={**ws, "origin": f"https://{HOST}"})).status_code == 204
        # and the dashboard's own route agrees
        r = await c.post("/api/comfyui/prompt", headers={"host": HOST, "origin": FOREIGN})
        assert r.status_code == 403
