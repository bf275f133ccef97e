"""Login, session cookie, Bearer token, CSRF, rate limit, nginx's auth_request, CORS."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from comfyui_docker.web.auth import Auth, safe_next

from .conftest import PASSWORD, build, client_for, make_settings, token_of


async def login(c, password: str = PASSWORD, next_url: str = "/", **headers: str):
    return await c.post("/login", data={"password": password, "next": next_url}, headers=headers)


async def test_open_without_password(client) -> None:
    r = await client.get("/api/system")
    assert r.status_code == 200
    assert (await client.get("/auth/verify")).status_code == 204
    body = (await client.get("/api/auth/token")).json()
    assert body == {"token": None, "password_set": False}
    r = await client.get("/login", follow_redirects=False)
    assert r.status_code == 303


async def test_unauthenticated_api_is_401_in_the_error_shape(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await c.get("/api/system")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await c.get("/api/system", headers={"hx-request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login?next=")
        assert (await c.get("/auth/verify")).status_code == 401


async def test_page_redirects_to_login_with_next(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await c.get("/models?q=wan", headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/models%3Fq%3Dwan"
        form = await c.get("/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        assert form.headers["cache-control"] == "no-store"


async def test_login_sets_hardened_cookies_and_session_works(locked) -> None:
    app, _ = locked
    async with client_for(app) as c:
        r = await login(c, next_url="/models")
        assert r.status_code == 303 and r.headers["location"] == "/models"
        cookies = r.headers.get_list("set-cookie")
        session = next(h for h in cookies if h.startswith("cd_session="))
        csrf = next(h for h in cookies if h.startswith("cd_csrf="))
        low = session.lower()
        assert "httponly" in low and "samesite=lax" in low and "secure" not in low
        assert "httponly" not in csrf.lower()
        assert PASSWORD not in " ".join(cookies)
        assert (await c.get("/api/system")).status_code == 200
        assert (await c.get("/auth/verify")).status_code == 204
        status = (await c.get("/api/auth/status")).json()
        assert status["method"] == "session" and status["csrf_token"] == c.cookies["cd_csrf"]


async def test_cookie_secure_behind_https_proxy(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await login(c, **{"x-forwarded-proto": "https"})
        assert all("secure" in h.lower() for h in r.headers.get_list("set-cookie"))


async def test_wrong_password_and_backoff(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "ws", password=PASSWORD, ENABLE_NGINX="true")  # X-Real-IP is nginx's
    async with client_for(app) as c:
        for _ in range(5):
            r = await login(c, "wrong")
            assert r.status_code == 401 and "Wrong password" in r.text
            assert "wrong" not in r.text.replace("Wrong password", "")
        r = await login(c, PASSWORD)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        # another client address is not affected
        r = await login(c, PASSWORD, **{"x-real-ip": "10.1.2.3"})
        assert r.status_code == 303


async def test_bearer_token(locked) -> None:
    app, _ = locked
    token = token_of(app)
    async with client_for(app) as c:
        ok = await c.get("/api/system", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        bad = await c.get("/api/system", headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401
        # a Bearer-authenticated change needs no CSRF token, even cross-site
        r = await c.post(
            "/api/presets/install",
            json={"preset_id": "SD15_BASE"},
            headers={"authorization": f"Bearer {token}", "origin": "https://evil.example"},
        )
        assert r.status_code == 200
        got = (await c.get("/api/auth/token", headers={"authorization": f"Bearer {token}"})).json()
        assert got == {"token": token, "password_set": True}


async def test_wrong_bearer_tokens_are_rate_limited(locked) -> None:
    async with client_for(locked[0]) as c:
        codes = [
            (await c.get("/api/system", headers={"authorization": f"Bearer guess{i}"})).status_code
            for i in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[-1] == 429


def test_token_derivation_and_api_token_setting(tmp_path: Path) -> None:
    a = Auth(make_settings(tmp_path, ACCESS_PASSWORD="pw1"))
    b = Auth(make_settings(tmp_path, ACCESS_PASSWORD="pw1"))
    c = Auth(make_settings(tmp_path, ACCESS_PASSWORD="pw2"))
    assert a.api_token() == b.api_token() != c.api_token()
    assert "pw1" not in (a.api_token() or "")
    d = Auth(make_settings(tmp_path, ACCESS_PASSWORD="pw1", API_TOKEN="my-own-token-123"))
    assert d.api_token() == "my-own-token-123" and d.check_token("my-own-token-123")
    assert not d.check_token("my-own-token-124")
    # sessions survive a restart with the same password, not a password change
    cookie, _ = a.new_session()
    assert b.session_id(cookie) is not None
    assert c.session_id(cookie) is None
    assert a.session_id(cookie[:-2] + "xx") is None


async def test_csrf_for_cookie_sessions(locked) -> None:
    async with client_for(locked[0]) as c:
        await login(c)
        body = {"preset_id": "SD15_BASE"}
        r = await c.post("/api/presets/install", json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = await c.post("/api/presets/install", json=body, headers={"x-csrf-token": "0" * 32})
        assert r.status_code == 403
        r = await c.post("/api/presets/install", json=body, headers={"x-csrf-token": c.cookies["cd_csrf"]})
        assert r.status_code == 200
        # a plain form from our own origin passes on its Origin header
        r = await c.post("/api/presets/install", json=body, headers={"origin": "http://localhost"})
        assert r.status_code == 200
        r = await c.post(
            "/api/presets/install",
            json=body,
            headers={"origin": "https://evil.example", "x-csrf-token": c.cookies["cd_csrf"]},
        )
        assert r.status_code == 403


async def test_cross_site_post_refused_even_without_password(client) -> None:
    r = await client.delete("/api/workflows/x.json", headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    r = await client.delete("/api/workflows/x.json", headers={"origin": "http://localhost"})
    assert r.status_code == 404


async def test_login_from_foreign_origin_refused(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await login(c, **{"origin": "https://evil.example"})
        assert r.status_code == 403
        assert "cd_session" not in r.headers.get("set-cookie", "")


async def test_logout_clears_cookies(locked) -> None:
    async with client_for(locked[0]) as c:
        await login(c)
        r = await c.post("/logout", headers={"origin": "http://localhost"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert any(h.startswith("cd_session=") and "Max-Age=0" in h for h in r.headers.get_list("set-cookie"))
        c.cookies.clear()
        assert (await c.get("/api/system")).status_code == 401


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/models?x=1", "/models?x=1"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("models", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_is_local_only(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


async def test_login_next_open_redirect_refused(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await login(c, next_url="//evil.example/")
        assert r.headers["location"] == "/"


async def test_secrets_never_in_responses_or_logs(locked, caplog) -> None:
    app, _ = locked
    token = token_of(app)
    caplog.set_level(logging.DEBUG)
    async with client_for(app) as c:
        texts = []
        for r in [
            await login(c, "wrong-" + PASSWORD),
            await c.get("/login"),
            await c.get("/openapi.json", headers={"authorization": f"Bearer {token}"}),
            await c.get("/api/system", headers={"authorization": f"Bearer {token}"}),
            await c.get("/health/ready"),
            await c.get("/api/nope", headers={"authorization": f"Bearer {token}"}),
        ]:
            texts.append(r.text)
        joined = "\n".join(texts)
        assert PASSWORD not in joined and token not in joined
    assert PASSWORD not in caplog.text and token not in caplog.text


async def test_cors_same_origin_by_default_and_configurable(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "a")
    async with client_for(app) as c:
        r = await c.get("/health", headers={"origin": "https://other.example"})
        assert "access-control-allow-origin" not in r.headers
    app2, _ = build(tmp_path / "b", CORS_ORIGINS="https://tools.example")
    async with client_for(app2) as c:
        r = await c.options(
            "/api/system",
            headers={"origin": "https://tools.example", "access-control-request-method": "GET"},
        )
        assert r.headers["access-control-allow-origin"] == "https://tools.example"
        r = await c.get("/api/system", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = await c.post("/api/generate", json={}, headers={"origin": "https://tools.example"})
        assert r.status_code != 403


async def test_verify_refuses_cross_site_changes_for_comfyui_port(locked) -> None:
    async with client_for(locked[0]) as c:
        await login(c)
        base = {"x-original-method": "POST", "host": "pod-3000.proxy.runpod.net"}
        r = await c.get("/auth/verify", headers={**base, "origin": "https://other-8080.proxy.runpod.net"})
        assert r.status_code == 403
        r = await c.get("/auth/verify", headers={**base, "origin": "https://pod-3000.proxy.runpod.net"})
        assert r.status_code == 204
        r = await c.get("/auth/verify", headers={"x-original-method": "GET", "origin": "https://x.example"})
        assert r.status_code == 204  # reads are not changes
