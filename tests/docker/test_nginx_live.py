"""nginx for real, in front of the dashboard (uvicorn, this process) and the fake ComfyUI.

Each public port is its own origin (RunPod gives each port its own subdomain), so cookies are
handled by hand here: a login on one port says nothing about the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web
from image_helpers import PASSWORD, TOKEN, Nginx, Uvicorn, free_port, run_nginx, stack_settings

from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from fakes.comfyui_root.launch import run_comfyui

pytestmark = pytest.mark.nginx

HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    base = tmp_path_factory.mktemp("stack")
    with run_comfyui(base / "comfy") as comfy:
        settings = stack_settings(
            base / "workspace", dashboard_internal=free_port(), comfyui_internal=comfy.port
        )
        with (
            Uvicorn(create_app(settings), settings.dashboard_internal_port),
            run_nginx(settings, base / "run") as running,
        ):
            yield running


async def login(client: aiohttp.ClientSession, base: str, password: str = PASSWORD) -> str:
    """Log in on one public port the way a browser's form does; return the `cd_session` cookie."""
    async with client.get(f"{base}/login?next=/", headers=HTML) as resp:
        assert resp.status == 200, await resp.text()
        assert 'name="password"' in await resp.text()
    async with client.post(
        f"{base}/login",
        data={"password": password, "next": "/"},
        headers={"Origin": base, **HTML},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/"
        return resp.cookies["cd_session"].value


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"cd_session={value}"}


# ---- without login ---------------------------------------------------------------------------
async def test_comfyui_port_sends_a_browser_to_the_login_page(
    stack: Nginx, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{stack.comfyui}/", headers=HTML, allow_redirects=False) as resp:
        assert resp.status in (302, 303)
        assert resp.headers["Location"].startswith("/login?next=/")


async def test_comfyui_port_answers_401_to_api_clients(stack: Nginx, client: aiohttp.ClientSession) -> None:
    for path in ("/system_stats", "/api/prompt", "/object_info"):
        async with client.get(f"{stack.comfyui}{path}", headers=JSON, allow_redirects=False) as resp:
            assert resp.status == 401, path
            assert (await resp.json())["error"]["code"] == "unauthorized"
    async with client.post(f"{stack.comfyui}/prompt", json={"prompt": {}}, allow_redirects=False) as resp:
        assert resp.status == 401
    async with client.get(
        f"{stack.comfyui}/system_stats", headers={"Authorization": "Bearer wrong"}, allow_redirects=False
    ) as resp:
        assert resp.status == 401


async def test_dashboard_port_refuses_without_login(stack: Nginx, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{stack.dashboard}/", headers=HTML, allow_redirects=False) as resp:
        assert resp.status in (302, 303)
        assert resp.headers["Location"].startswith("/login")
    async with client.get(f"{stack.dashboard}/api/auth/token", headers=JSON) as resp:
        assert resp.status == 401


async def test_websockets_refused_without_login(stack: Nginx, client: aiohttp.ClientSession) -> None:
    for url in (f"{stack.comfyui}/ws?clientId=x", f"{stack.dashboard}/ws"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with client.ws_connect(url):
                pass
        assert info.value.status in (401, 403), url


# ---- after login -----------------------------------------------------------------------------
async def test_login_on_comfyui_port_reaches_comfyui(stack: Nginx, client: aiohttp.ClientSession) -> None:
    session = await login(client, stack.comfyui)
    async with client.get(f"{stack.comfyui}/system_stats", headers=cookie(session)) as resp:
        assert resp.status == 200
        stats = await resp.json()
    # the answer comes from the fake ComfyUI, started with --listen 127.0.0.1
    assert stats["system"]["argv"][stats["system"]["argv"].index("--listen") + 1] == "127.0.0.1"
    async with client.get(f"{stack.comfyui}/", headers={**HTML, **cookie(session)}) as resp:
        assert resp.status == 200
        assert "text/html" in resp.headers["Content-Type"]


async def test_bearer_token_reaches_comfyui(stack: Nginx, client: aiohttp.ClientSession) -> None:
    async with client.get(
        f"{stack.comfyui}/api/system_stats", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        assert r.status == 200
        assert "system" in await r.json()


async def test_login_on_dashboard_port(stack: Nginx, client: aiohttp.ClientSession) -> None:
    session = await login(client, stack.dashboard)
    async with client.get(f"{stack.dashboard}/api/auth/status", headers=cookie(session)) as resp:
        assert resp.status == 200
        assert (await resp.json())["method"] == "session"


async def test_wrong_password_gets_no_cookie(stack: Nginx, client: aiohttp.ClientSession) -> None:
    async with client.post(
        f"{stack.comfyui}/login",
        data={"password": "not it", "next": "/"},
        headers={"Origin": stack.comfyui, **HTML, "X-Real-IP": "192.0.2.77"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 401
        assert "cd_session" not in resp.cookies


async def test_websocket_upgrade_through_comfyui_port(stack: Nginx, client: aiohttp.ClientSession) -> None:
    session = await login(client, stack.comfyui)
    async with client.ws_connect(
        f"{stack.comfyui}/ws?clientId=nginx-test", headers={**cookie(session), "Origin": stack.comfyui}
    ) as ws:
        frame = await ws.receive(timeout=10)
        assert frame.type == aiohttp.WSMsgType.TEXT
        first = json.loads(frame.data)
        assert first["type"] == "status"
        assert first["data"]["sid"] == "nginx-test"


async def test_websocket_upgrade_through_dashboard_port(stack: Nginx, client: aiohttp.ClientSession) -> None:
    session = await login(client, stack.dashboard)
    # ComfyUI's WebSocket relayed by the dashboard: two proxies, one upgrade each
    async with client.ws_connect(
        f"{stack.dashboard}/api/comfyui/ws?clientId=dash-test",
        headers={**cookie(session), "Origin": stack.dashboard},
    ) as ws:
        frame = await ws.receive(timeout=10)
        assert frame.type == aiohttp.WSMsgType.TEXT
        assert json.loads(frame.data)["type"] == "status"
    async with client.ws_connect(
        f"{stack.dashboard}/ws", headers={**cookie(session), "Origin": stack.dashboard}
    ) as ws:
        assert not ws.closed


async def test_cookie_of_one_port_is_checked_by_the_other(
    stack: Nginx, client: aiohttp.ClientSession
) -> None:
    forged = "not-a-signed-session"
    async with client.get(f"{stack.comfyui}/system_stats", headers={**JSON, **cookie(forged)}) as resp:
        assert resp.status == 401


# ---- ComfyUI down ----------------------------------------------------------------------------
async def test_comfyui_down_shows_the_dashboard_page(
    stack: Nginx, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Same dashboard, but ComfyUI's upstream port has nobody listening: 503 + the state page."""
    down = stack_settings(
        stack.settings.workspace_root,
        dashboard_internal=stack.settings.dashboard_internal_port,
        comfyui_internal=free_port(),
    )
    with run_nginx(down, tmp_path / "run") as running:
        session = await login(client, running.comfyui)
        async with client.get(f"{running.comfyui}/", headers={**HTML, **cookie(session)}) as resp:
            body = await resp.text()
            assert resp.status == 503
            assert "ComfyUI" in body
            assert "502 Bad Gateway" not in body  # not nginx's bare error page
        async with client.post(
            f"{running.comfyui}/prompt",
            json={"prompt": {}},
            headers={**cookie(session), "Origin": running.comfyui},  # as ComfyUI's page sends it
        ) as resp:
            assert resp.status == 503  # a POST gets the page by GET, never a 405
        async with client.get(f"{running.comfyui}/system_stats", headers=JSON) as resp:
            assert resp.status == 401  # the state page is behind the login too
    # nginx has stopped (its buffered access log is flushed): both logs are on the volume
    logs = stack.settings.workspace_root / "logs"
    access = (logs / "nginx-access.log").read_text()
    assert '"GET / HTTP/1.1" 503 ' in access and f" {down.comfyui_port}" in access
    assert (logs / "nginx-error.log").is_file()


# ---- ComfyUI only on loopback ----------------------------------------------------------------
def listening(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }


def test_comfyui_listens_on_loopback_only(stack: Nginx) -> None:
    internal = stack.settings.comfyui_internal_port
    assert listening(internal) == {"127.0.0.1"}
    conf = stack.conf.read_text()
    assert f"listen {internal}" not in conf and f":{internal};" in conf
    assert f"server 127.0.0.1:{internal};" in conf
    # nginx listens on the public ports only
    nginx_ports = {
        c.laddr.port
        for proc in [psutil.Process(stack.proc.pid), *psutil.Process(stack.proc.pid).children()]
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert nginx_ports == {stack.settings.dashboard_port, stack.settings.comfyui_port}


# ---- 1 GB upload -----------------------------------------------------------------------------
GIB = 1024**3
CHUNK = 1024 * 1024


class Sink:
    """Stands in for ComfyUI's upload route: reads the body as a stream, counts and hashes it."""

    def __init__(self) -> None:
        self.received = 0
        self.digest = ""
        self.spooled = 0

    async def handle(self, request: web.Request) -> web.Response:
        h = hashlib.blake2b(digest_size=16)
        async for chunk in request.content.iter_chunked(CHUNK):
            self.received += len(chunk)
            h.update(chunk)
        self.digest = h.hexdigest()
        return web.json_response({"received": self.received})


@pytest.mark.slow
async def test_one_gigabyte_upload_streams_through(
    stack: Nginx, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sink = Sink()
    app = web.Application(client_max_size=2 * GIB)
    app.router.add_post("/upload/image", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings: Settings = stack_settings(
        stack.settings.workspace_root,
        dashboard_internal=stack.settings.dashboard_internal_port,
        comfyui_internal=port,
    )
    block = bytes(range(256)) * (CHUNK // 256)
    sent = hashlib.blake2b(digest_size=16)
    spool = tmp_path / "run" / "client_body"
    peak_spool = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak_spool
        for i in range(GIB // CHUNK):
            piece = i.to_bytes(8, "big") + block[8:]
            sent.update(piece)
            if i % 128 == 0:  # nginx must not spool the body to disk
                peak_spool = max(peak_spool, sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()))
            yield piece

    try:
        with run_nginx(settings, tmp_path / "run") as running:
            async with client.post(
                f"{running.comfyui}/upload/image",
                data=body(),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"},
                timeout=aiohttp.ClientTimeout(total=300),
            ) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["received"] == GIB
    finally:
        await runner.cleanup()
    assert sink.received == GIB
    assert sink.digest == sent.hexdigest()
    assert peak_spool == 0
