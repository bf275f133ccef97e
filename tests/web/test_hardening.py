"""Small holes closed: HEAD on GET routes, no framing, known hosts without a password, redacted
log lines on /ws, password and token compared as digests."""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path

import aiohttp
import pytest

from comfyui_docker.events import LogLine

from .conftest import PASSWORD, build, client_for, token_of


@pytest.mark.parametrize(
    "path", ["/health", "/health/ready", "/api/system", "/api/presets", "/models", "/login"]
)
async def test_head_answers_like_get(client, path: str) -> None:
    get = await client.get(path, follow_redirects=False)
    head = await client.head(path, follow_redirects=False)
    assert head.status_code == get.status_code != 405, path
    assert head.headers.get("content-type") == get.headers.get("content-type")


async def test_head_is_not_in_the_schema_and_405_still_says_what_is_allowed(client) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert not any("head" in ops for ops in schema["paths"].values())
    r = await client.put("/api/system")
    assert r.status_code == 405 and "GET" in r.headers["allow"]


async def test_every_answer_refuses_framing(locked) -> None:
    async with client_for(locked[0]) as c:
        for r in [
            await c.get("/login"),
            await c.get("/api/system"),  # a 401
            await c.get("/static/app.css"),
            await c.get("/nope", headers={"accept": "text/html"}),
        ]:
            assert r.headers["x-frame-options"] == "DENY", r.url
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.url
            assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:8080", 200),
        ("127.0.0.1:8080", 200),
        ("[::1]:8080", 200),
        ("10.1.2.3", 200),
        ("abc123-8080.proxy.runpod.net", 200),
        ("tools.example", 200),  # the host of a CORS_ORIGINS entry
        ("attacker.example", 403),  # a DNS-rebinding name pointed at this pod
        ("attacker.example:8080", 403),
        ("proxy.runpod.net.attacker.example", 403),
    ],
)
async def test_without_a_password_only_known_hosts_are_answered(
    tmp_path: Path, host: str, status: int
) -> None:
    app, _ = build(tmp_path / "ws", CORS_ORIGINS="https://tools.example")
    async with client_for(app) as c:
        r = await c.get("/api/system", headers={"host": host})
        assert r.status_code == status, host
        if status == 403:
            assert r.json()["error"]["code"] == "unknown_host"
            # nginx asks the same on ComfyUI's port
            assert (await c.get("/auth/verify", headers={"host": host})).status_code == 403
        assert (await c.get("/health", headers={"host": host})).status_code == 200  # liveness probes


async def test_with_a_password_any_host_may_log_in(locked) -> None:
    async with client_for(locked[0]) as c:
        r = await c.post("/login", data={"password": PASSWORD}, headers={"host": "my-own-domain.example"})
        assert r.status_code == 303


async def test_log_lines_on_the_websocket_are_redacted(tmp_path: Path, live) -> None:
    from fakes.comfyui_root.launch import free_port

    app, svc = build(tmp_path / "ws", password=PASSWORD, HF_TOKEN="hf_abcdefghijklmnop")
    token = token_of(app)
    port = free_port()
    async with (
        live(app, port) as server,
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{server.ws_url}/ws?types=log_line", headers={"Authorization": f"Bearer {token}"}
        ) as ws,
    ):
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["type"] == "hello"
        line = f"pw={PASSWORD} hf=hf_abcdefghijklmnop api={token}"
        svc.bus.publish(LogLine(source="comfyui", line=line))
        event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
    assert event["type"] == "log_line"
    text = event["data"]["line"]
    assert PASSWORD not in text and "hf_abcdefghijklmnop" not in text and token not in text
    assert text.count("********") == 3


def test_password_and_token_are_compared_as_equal_length_digests(monkeypatch, tmp_path: Path) -> None:
    """compare_digest on inputs of different lengths returns at once: the time told the length."""
    from comfyui_docker.web.auth import policy

    from .conftest import make_settings

    seen: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(policy.hmac, "compare_digest", spy)
    auth = policy.Auth(make_settings(tmp_path, ACCESS_PASSWORD=PASSWORD))
    for candidate in ("", "x", PASSWORD[:-1], PASSWORD, PASSWORD * 20):
        auth.check_password(candidate)
        auth.check_token(candidate)
    assert seen and all(a == b for a, b in seen)
    assert auth.check_password(PASSWORD) and not auth.check_password(PASSWORD + " ")
