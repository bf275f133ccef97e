"""Server-side sessions: logging out ends the session, "log out everywhere" ends them all, and a
cookie is only good on the volume (and with the password) it was made for."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
from fastapi import FastAPI

from comfyui_docker.web.auth import Auth

from .conftest import PASSWORD, build, client_for, make_settings, token_of

ORIGIN = {"origin": "http://localhost"}


async def login(c: httpx.AsyncClient) -> tuple[str, str]:
    r = await c.post("/login", data={"password": PASSWORD, "next": "/"})
    assert r.status_code == 303
    return r.cookies["cd_session"], r.cookies["cd_csrf"]


async def status_with(c: httpx.AsyncClient, session: str) -> int:
    c.cookies.clear()
    c.cookies.set("cd_session", session)
    return (await c.get("/api/system")).status_code


async def test_logout_ends_the_session_on_the_server(locked) -> None:
    async with client_for(locked[0]) as c:
        session, _ = await login(c)
        assert await status_with(c, session) == 200
        assert (await c.post("/logout", headers=ORIGIN)).status_code == 303
        # the cookie a thief copied before the logout is dead too
        assert await status_with(c, session) == 401


async def test_a_new_login_ends_the_session_it_replaces(locked) -> None:
    async with client_for(locked[0]) as c:
        first, _ = await login(c)
        second, _ = await login(c)
        assert first != second
        assert await status_with(c, first) == 401
        assert await status_with(c, second) == 200


async def test_log_out_everywhere(locked) -> None:
    app, _ = locked
    token = token_of(app)
    async with client_for(app) as c:
        laptop, _ = await login(c)
        c.cookies.clear()
        phone, phone_csrf = await login(c)
        listed = (await c.get("/api/auth/sessions")).json()
        assert listed["count"] == 2 and sum(s["current"] for s in listed["sessions"]) == 1
        assert "id_hash" not in str(listed) and laptop not in str(listed)
        r = await c.delete("/api/auth/sessions")
        assert r.status_code == 403  # a change: the CSRF token is needed
        r = await c.delete("/api/auth/sessions", headers={"x-csrf-token": phone_csrf})
        assert r.status_code == 200 and r.json() == {"ended": 2}
        assert r.headers["hx-redirect"] == "/login"
        assert await status_with(c, laptop) == 401
        assert await status_with(c, phone) == 401
        c.cookies.clear()
        # scripts keep working: the Bearer token is not a session
        r = await c.get("/api/system", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200


async def test_a_cookie_is_only_good_on_its_own_volume(tmp_path: Path) -> None:
    """Two pods with the same password but different volumes: each refuses the other's cookie."""
    pod_a, _ = build(tmp_path / "a", password=PASSWORD)
    pod_b, _ = build(tmp_path / "b", password=PASSWORD)
    async with client_for(pod_a) as a:
        session, _ = await login(a)
        assert await status_with(a, session) == 200
    async with client_for(pod_b) as b:
        assert await status_with(b, session) == 401
    # the same volume after a restart (a new app, a new process): still logged in
    again, _ = build(tmp_path / "a", password=PASSWORD)
    async with client_for(again) as a2:
        assert await status_with(a2, session) == 200
    # a new password: every cookie is dead
    changed, _ = build(tmp_path / "a", password=PASSWORD + "!")
    async with client_for(changed) as a3:
        assert await status_with(a3, session) == 401


def test_the_volume_secret_is_private_and_sessions_live_on_the_volume(locked: tuple[FastAPI, object]) -> None:
    app, svc = locked
    auth: Auth = app.state.dashboard.auth
    auth.new_session("10.0.0.1")
    ws = svc.workspace  # type: ignore[attr-defined]
    key = ws.config / "session.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    assert (ws.cache / "sessions.sqlite3").is_file()
    assert PASSWORD.encode() not in (ws.cache / "sessions.sqlite3").read_bytes()


def test_sessions_without_a_writable_volume_fall_back_to_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    auth = Auth(make_settings(blocked, ACCESS_PASSWORD=PASSWORD))
    cookie, csrf = auth.new_session()
    assert auth.session_id(cookie) is not None and len(csrf) == 32
