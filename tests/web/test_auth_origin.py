"""Cross-site requests: `Origin: null` is foreign, and on ComfyUI's port (no CSRF token there) a
cookie's change without an Origin must say `Sec-Fetch-Site: same-origin`.

The attack these close: a page on a same-site host (another `*-3000.proxy.runpod.net`) POSTs
with `fetch(..., {mode: "no-cors", credentials: "include"})` to a second origin that answers 307
to the victim's ComfyUI port; the redirected request arrives with `Origin: null` and the Lax
cookie. (tests/browser/test_attacks.py plays it in Chromium through nginx.)
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import PASSWORD, build, client_for, token_of

HOST = "victim-3000.proxy.runpod.net"


async def logged_in(c: httpx.AsyncClient) -> tuple[str, str]:
    r = await c.post("/login", data={"password": PASSWORD, "next": "/"}, headers={"host": HOST})
    assert r.status_code == 303
    return r.cookies["cd_session"], r.cookies["cd_csrf"]


def verify_headers(session: str, **extra: str) -> dict[str, str]:
    return {"host": HOST, "cookie": f"cd_session={session}", "x-original-method": "POST", **extra}


async def test_comfyui_port_refuses_a_null_origin_change(locked) -> None:
    async with client_for(locked[0], cookies=None) as c:
        session, _ = await logged_in(c)
        c.cookies.clear()
        r = await c.get("/auth/verify", headers=verify_headers(session, origin="null"))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "csrf_failed"
        r = await c.get("/auth/verify", headers=verify_headers(session, origin="NULL"))
        assert r.status_code == 403
        # our own page still passes
        r = await c.get("/auth/verify", headers=verify_headers(session, origin=f"https://{HOST}"))
        assert r.status_code == 204


@pytest.mark.parametrize(
    ("fetch_site", "status"),
    [("same-origin", 204), ("none", 204), ("same-site", 403), ("cross-site", 403), (None, 403)],
)
async def test_comfyui_port_change_without_origin_needs_sec_fetch_site(
    locked, fetch_site: str | None, status: int
) -> None:
    async with client_for(locked[0], cookies=None) as c:
        session, _ = await logged_in(c)
        c.cookies.clear()
        extra = {"sec-fetch-site": fetch_site} if fetch_site else {}
        r = await c.get("/auth/verify", headers=verify_headers(session, **extra))
        assert r.status_code == status, fetch_site
        # reads are not changes
        r = await c.get(
            "/auth/verify", headers={**verify_headers(session, **extra), "x-original-method": "GET"}
        )
        assert r.status_code == 204


async def test_comfyui_port_bearer_changes_need_no_origin(locked) -> None:
    token = token_of(locked[0])
    async with client_for(locked[0], cookies=None) as c:
        r = await c.get(
            "/auth/verify",
            headers={
                "host": HOST,
                "authorization": f"Bearer {token}",
                "x-original-method": "POST",
                "origin": "null",
            },
        )
        assert r.status_code == 204


async def test_comfyui_port_checks_the_websocket_origin(locked) -> None:
    """nginx now passes X-Original-Upgrade on ComfyUI's port: a cookie WebSocket from another page
    (same-site for SameSite=Lax) is refused; our own page and a Bearer token pass."""
    token = token_of(locked[0])
    async with client_for(locked[0], cookies=None) as c:
        session, _ = await logged_in(c)
        c.cookies.clear()
        ws = {"host": HOST, "x-original-method": "GET", "x-original-upgrade": "websocket"}
        cookie = {"cookie": f"cd_session={session}"}
        r = await c.get(
            "/auth/verify", headers={**ws, **cookie, "origin": "https://attacker-3000.proxy.runpod.net"}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = await c.get("/auth/verify", headers={**ws, **cookie, "origin": "null"})
        assert r.status_code == 403
        r = await c.get("/auth/verify", headers={**ws, **cookie, "origin": f"https://{HOST}"})
        assert r.status_code == 204
        r = await c.get(
            "/auth/verify",
            headers={**ws, "authorization": f"Bearer {token}", "origin": "https://attacker.example"},
        )
        assert r.status_code == 204
        assert (await c.get("/auth/verify", headers=ws)).status_code == 401


async def test_dashboard_refuses_a_null_origin_even_with_the_csrf_token(locked) -> None:
    async with client_for(locked[0]) as c:
        _, csrf = await logged_in(c)
        body = {"preset_id": "SD15_BASE"}
        headers = {"host": HOST, "x-csrf-token": csrf}
        r = await c.post("/api/presets/install", json=body, headers={**headers, "origin": "null"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = await c.post("/api/presets/install", json=body, headers=headers)
        assert r.status_code == 200


async def test_null_origin_refused_without_password_too(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "ws")
    async with client_for(app) as c:
        r = await c.delete("/api/workflows/x.json", headers={"origin": "null"})
        assert r.status_code == 403
        r = await c.get("/auth/verify", headers={"x-original-method": "POST", "origin": "null"})
        assert r.status_code == 403
        # scripts send no Origin at all, and still work without a password
        assert (await c.delete("/api/workflows/x.json")).status_code == 404


async def test_login_and_logout_refuse_a_null_origin(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await c.post("/login", data={"password": PASSWORD, "next": "/"}, headers={"origin": "null"})
        assert r.status_code == 403
        assert "cd_session" not in r.headers.get("set-cookie", "")
        assert (await c.post("/logout", headers={"origin": "null"})).status_code == 403
