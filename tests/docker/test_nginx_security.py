"""Attacks through real nginx (the product's config), the dashboard and the fake ComfyUI.

The browser versions of the two cross-site attacks are in tests/browser/test_attacks.py; here
they are played with raw headers, as curl would, together with the login backoff behind nginx,
the login body cap, and what reaches ComfyUI on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from image_helpers import PASSWORD, TOKEN, Nginx, Uvicorn, free_port, run_nginx, stack_settings

from comfyui_docker.web.app import create_app
from fakes.comfyui_root.launch import Comfy, run_comfyui

pytestmark = pytest.mark.nginx

VICTIM = "victim-3000.proxy.runpod.net"
MIB = 1024 * 1024


@dataclass
class Stack:
    nginx: Nginx
    comfy: Comfy

    def prompts_seen(self) -> int:
        return self.comfy.log_path.read_text(errors="replace").count("got prompt")


@pytest.fixture(scope="module")
def stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("sec")
    with run_comfyui(base / "comfy") as comfy:
        settings = stack_settings(base / "ws", dashboard_internal=free_port(), comfyui_internal=comfy.port)
        with (
            Uvicorn(create_app(settings), settings.dashboard_internal_port),
            run_nginx(settings, base / "run") as n,
        ):
            yield Stack(n, comfy)


async def login(client: aiohttp.ClientSession, base: str, host: str | None = None) -> str:
    headers = {"Origin": f"http://{host}" if host else base}
    if host:
        headers["Host"] = host
    async with client.post(
        f"{base}/login", data={"password": PASSWORD, "next": "/"}, headers=headers, allow_redirects=False
    ) as resp:
        assert resp.status == 303, await resp.text()
        return resp.cookies["cd_session"].value


# ---- finding 1: Origin: null on ComfyUI's port ------------------------------------------------
async def test_null_origin_post_to_comfyui_port_is_refused(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    """The issue's curl: cookie, a same-site Host, `Origin: null` -> /prompt ran (200)."""
    session = await login(client, stack.nginx.comfyui, VICTIM)
    before = stack.prompts_seen()
    body = b'{"prompt": {"1": {"class_type": "EmptyLatentImage", "inputs": {}}}}'
    headers = {"Cookie": f"cd_session={session}", "Host": VICTIM, "Content-Type": "application/json"}
    for extra in ({"Origin": "null"}, {}, {"Sec-Fetch-Site": "same-site"}):
        async with client.post(
            f"{stack.nginx.comfyui}/prompt", data=body, headers={**headers, **extra}
        ) as resp:
            assert resp.status == 403, extra
            assert (await resp.json())["error"]["code"] == "forbidden"
            assert resp.headers["X-Frame-Options"] == "DENY"
    assert stack.prompts_seen() == before
    # ComfyUI's own page (its Origin) still queues prompts
    async with client.post(
        f"{stack.nginx.comfyui}/prompt", data=body, headers={**headers, "Origin": f"http://{VICTIM}"}
    ) as resp:
        assert resp.status in (200, 400), await resp.text()  # reached ComfyUI (which validates it)
    assert stack.prompts_seen() == before + 1


async def test_foreign_websocket_on_comfyui_port_is_refused(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    session = await login(client, stack.nginx.comfyui, VICTIM)
    cookie = {"Cookie": f"cd_session={session}", "Host": VICTIM}
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with client.ws_connect(
            f"{stack.nginx.comfyui}/ws?clientId=x",
            headers={**cookie, "Origin": "http://attacker-3000.proxy.runpod.net"},
        ):
            pass
    assert info.value.status == 403
    async with client.ws_connect(
        f"{stack.nginx.comfyui}/ws?clientId=x", headers={**cookie, "Origin": f"http://{VICTIM}"}
    ) as ws:
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT


# ---- finding 2: the address nginx saw ----------------------------------------------------------
async def wrong_login(base: str, source: str = "127.0.0.1", **headers: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as c,
        c.post(
            f"{base}/login", data={"password": "guess", "next": "/"}, headers=headers, allow_redirects=False
        ) as resp,
    ):
        return resp.status


async def test_rotating_forwarding_headers_through_nginx_do_not_dodge_the_backoff(stack: Stack) -> None:
    source = "127.0.0.23"
    codes = [
        await wrong_login(
            stack.nginx.dashboard,
            source,
            **{"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"203.0.113.{i}"},
        )
        for i in range(7)
    ]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    # another source address (as nginx saw it) is not held up
    assert await wrong_login(stack.nginx.dashboard, "127.0.0.24") == 401


# ---- finding 3: the login body ------------------------------------------------------------------
def post_big_login(port: int, total: int) -> tuple[bytes, int]:
    """A multipart POST /login of `total` bytes from a plain socket: one thread sends while this
    one reads the answer (nginx answers early, then drains and closes). (answer, body bytes sent
    when the answer arrived)"""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {total}\r\n\r\n"
    )
    sent = [0]

    def pump() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(head.encode())
            block = b"x" * MIB
            while sent[0] < total:
                sock.sendall(block)
                sent[0] += MIB

    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    answer = b""
    at = None
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            at = sent[0] if at is None else at  # when the answer began to arrive
            answer += chunk
    sock.close()
    sender.join(10)
    return answer, sent[0] if at is None else at


async def test_a_300_mb_multipart_login_is_refused_by_nginx(stack: Stack) -> None:
    spool = stack.nginx.run_dir / "client_body"
    for port in (stack.nginx.settings.dashboard_port, stack.nginx.settings.comfyui_port):
        started = time.monotonic()
        answer, sent = await asyncio.to_thread(post_big_login, port, 300 * MIB)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        assert time.monotonic() - started < 30
        assert sent < 300 * MIB  # nginx answered before the body was through
        assert sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()) == 0


# ---- our credentials stay ours on ComfyUI's port -------------------------------------------------
@pytest.fixture
async def echo_port(stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[Nginx, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    s = stack.nginx.settings
    settings = stack_settings(
        s.workspace_root, dashboard_internal=s.dashboard_internal_port, comfyui_internal=port
    )
    try:
        with run_nginx(settings, tmp_path / "run") as running:
            yield running, seen
    finally:
        await runner.cleanup()


async def test_comfyui_never_sees_our_cookie_or_token(
    echo_port: tuple[Nginx, list[dict[str, Any]]], client: aiohttp.ClientSession
) -> None:
    running, seen = echo_port
    session = await login(client, running.comfyui)
    async with client.get(
        f"{running.comfyui}/system_stats",
        headers={"Cookie": f"theme=dark; cd_session={session}; cd_csrf=abc; cd_device=x.y.z"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    async with client.get(
        f"{running.comfyui}/system_stats", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 200
    cookies, bearer = seen[-2], seen[-1]
    sent_on = cookies.get("cookie", "")
    assert "cd_session" not in sent_on and "cd_csrf" not in sent_on and "cd_device" not in sent_on
    assert "theme=dark" in cookies["cookie"]
    assert "authorization" not in bearer
    assert cookies["x-real-ip"] == "127.0.0.1" and cookies["x-forwarded-for"] == "127.0.0.1"


# ---- without a password: known host names only -------------------------------------------------
@pytest.fixture(scope="module")
def open_stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    base = tmp_path_factory.mktemp("open")
    with run_comfyui(base / "comfy") as comfy:
        settings = stack_settings(
            base / "ws", dashboard_internal=free_port(), comfyui_internal=comfy.port, password=""
        )
        with (
            Uvicorn(create_app(settings), settings.dashboard_internal_port),
            run_nginx(settings, base / "run") as n,
        ):
            yield n


async def test_dns_rebinding_is_refused_without_a_password(
    open_stack: Nginx, client: aiohttp.ClientSession
) -> None:
    for base in (open_stack.comfyui, open_stack.dashboard):
        async with client.get(f"{base}/system_stats", headers={"Host": "rebind.attacker.example"}) as resp:
            assert resp.status == 403, base
        async with client.get(f"{base}/api/system", headers={"Host": "rebind.attacker.example"}) as resp:
            assert resp.status == 403, base
    async with client.get(f"{open_stack.comfyui}/system_stats") as resp:  # Host: 127.0.0.1:<port>
        assert resp.status == 200
    async with client.get(
        f"{open_stack.comfyui}/system_stats", headers={"Host": "abc-3000.proxy.runpod.net"}
    ) as resp:
        assert resp.status == 200
    # nothing cross-site changes anything, password or not
    async with client.post(f"{open_stack.comfyui}/prompt", json={}, headers={"Origin": "null"}) as resp:
        assert resp.status == 403
