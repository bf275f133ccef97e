"""`/api/comfyui/*` on the dashboard's public port, served by nginx itself (one hop to ComfyUI).

Real nginx with the product's config, the dashboard on uvicorn (this process) and the fake
ComfyUI; where the test must see what ComfyUI receives, a tiny aiohttp echo server stands in for
it. The dashboard app is wrapped in a recorder, so each test can tell whether a request went
nginx -> ComfyUI (the dashboard only sees /auth/verify) or through the dashboard's Python proxy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from image_helpers import PASSWORD, TOKEN, Nginx, Uvicorn, free_port, run_nginx, stack_settings

from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from fakes.comfyui_root.launch import Comfy, run_comfyui
from web.fakes import FakeSupervisor

pytestmark = pytest.mark.nginx

BEARER = {"Authorization": f"Bearer {TOKEN}"}
FILE = "out put.bin"
VIEW = "/view?filename=out%20put.bin&type=output"
# the server's own, or per connection: not part of what ComfyUI answered
VARYING = {"date", "server", "connection", "keep-alive", "transfer-encoding"}


class Recorder:
    """ASGI wrapper: the paths of the requests that reached the dashboard app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@dataclass
class Stack:
    nginx: Nginx
    comfy: Comfy
    recorder: Recorder
    settings: Settings

    @property
    def dashboard(self) -> str:
        return self.nginx.dashboard

    @property
    def app_url(self) -> str:
        """The dashboard itself, without nginx (what `make run` serves)."""
        return f"http://127.0.0.1:{self.settings.dashboard_internal_port}"


@pytest.fixture(scope="module")
def stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("api")
    with run_comfyui(base / "comfy") as comfy:
        (comfy.layout.output / FILE).write_bytes(os.urandom(3 * 2**20 + 123))
        settings = stack_settings(base / "ws", dashboard_internal=free_port(), comfyui_internal=comfy.port)
        recorder = Recorder(create_app(settings))
        with (
            Uvicorn(recorder, settings.dashboard_internal_port),
            run_nginx(settings, base / "run") as running,
        ):
            yield Stack(running, comfy, recorder, settings)


async def login(client: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """The form login on the dashboard's port: (cd_session, cd_csrf)."""
    async with client.post(
        f"{base}/login",
        data={"password": PASSWORD, "next": "/"},
        headers={"Origin": base},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, await resp.text()
        return resp.cookies["cd_session"].value, resp.cookies["cd_csrf"].value


@dataclass
class Echo:
    """Stands in for ComfyUI: answers with what it received (raw path, headers, body)."""

    port: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        digest, length, head = hashlib.sha256(), 0, b""
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
            head = (head + chunk)[:4096]
        got = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": head.decode("latin-1"),
            "length": length,
            "sha256": digest.hexdigest(),
        }
        self.seen.append(got)
        return web.json_response(got, headers={"X-Echo": "1", "Set-Cookie": "comfy=1; Path=/"})


@pytest.fixture
async def echo_stack(stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[Nginx, Echo]]:
    """nginx whose ComfyUI is the echo server; the same dashboard behind it."""
    echo = Echo()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    echo.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", echo.port).start()
    settings = stack_settings(
        stack.settings.workspace_root,
        dashboard_internal=stack.settings.dashboard_internal_port,
        comfyui_internal=echo.port,
    )
    try:
        with run_nginx(settings, tmp_path / "run") as running:
            yield running, echo
    finally:
        await runner.cleanup()


def comparable(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in VARYING}


# ---- the file, as ComfyUI serves it --------------------------------------------------------------
async def test_view_through_the_dashboard_port_is_comfyui_own_answer(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    async with client.get(stack.comfy.url + VIEW) as resp:
        assert resp.status == 200
        direct_body, direct_headers = await resp.read(), comparable(resp.headers)
    stack.recorder.paths.clear()
    async with client.get(stack.dashboard + "/api/comfyui" + VIEW, headers=BEARER) as resp:
        assert resp.status == 200
        body, headers = await resp.read(), comparable(resp.headers)
    assert body == direct_body and len(body) == 3 * 2**20 + 123
    assert headers == direct_headers
    assert headers["content-disposition"] == f'filename="{FILE}"'
    # nginx went to ComfyUI itself; the dashboard was only asked who may
    assert stack.recorder.paths == ["/auth/verify"]
    heads = []
    for url in (stack.comfy.url + VIEW, stack.dashboard + "/api/comfyui" + VIEW):
        async with client.head(url, headers=BEARER) as resp:
            heads.append((resp.status, resp.headers.get("Allow")))
    assert heads[0] == heads[1]  # ComfyUI's GET routes refuse HEAD (405): said as ComfyUI says it


async def test_odd_spellings_of_the_prefix_go_through_the_dashboard(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    """A raw URI nginx cannot cut (percent-encoded prefix) is served by the Python route."""
    stack.recorder.paths.clear()
    async with client.get(
        aiohttp.client.URL(stack.dashboard + "/api/%63omfyui" + VIEW, encoded=True), headers=BEARER
    ) as resp:
        assert resp.status == 200
        assert len(await resp.read()) == 3 * 2**20 + 123
    assert stack.recorder.paths == ["/api/comfyui/view"]


async def test_path_and_query_reach_comfyui_as_encoded(
    echo_stack: tuple[Nginx, Echo], client: aiohttp.ClientSession
) -> None:
    running, echo = echo_stack
    for tail in (
        "/view?filename=a%20b&type=output",
        "/a%2Fb/c%20d?x=%2B&y=%26&z",
        "/prompt",
        "/",
    ):
        url = aiohttp.client.URL(running.dashboard + "/api/comfyui" + tail, encoded=True)
        async with client.get(url, headers=BEARER) as resp:
            assert resp.status == 200
            assert (await resp.json())["raw_path"] == tail
            assert echo.seen[-1]["raw_path"] == tail
            assert resp.headers["X-Echo"] == "1"
            assert resp.headers["Set-Cookie"] == "comfy=1; Path=/"  # ComfyUI's own headers kept


async def test_our_credentials_never_reach_comfyui(
    echo_stack: tuple[Nginx, Echo], client: aiohttp.ClientSession
) -> None:
    running, echo = echo_stack
    session, csrf = await login(client, running.dashboard)
    url = running.dashboard + "/api/comfyui/prompt"
    cases = {
        f"theme=dark; cd_session={session}; cd_csrf={csrf}; other=1": "theme=dark; other=1",
        f"cd_session={session}; theme=dark": "theme=dark",
        f"theme=dark;cd_csrf={csrf};cd_session={session}": "theme=dark",
        f"cd_session={session}; cd_csrf={csrf}": None,
        f"theme=dark; cd_device=d.e.v; cd_session={session}; cd_csrf={csrf}": "theme=dark",
        # more of ours than nginx cuts out (a cookie tossed in by a sibling subdomain): no Cookie at all
        f"cd_session=x; cd_session={session}; theme=dark; cd_csrf={csrf}; cd_device=d": None,
        f"xcd_session=keep; theme=dark; cd_session={session}": "xcd_session=keep; theme=dark",
    }
    for sent, expected in cases.items():
        headers = {"Cookie": sent, "X-CSRF-Token": csrf, "Origin": running.dashboard}
        async with client.post(url, json={"prompt": {}}, headers=headers) as resp:
            assert resp.status == 200, (sent, await resp.text())
            got = await resp.json()
        assert got["headers"].get("cookie") == expected, sent
        assert "x-csrf-token" not in got["headers"]
        assert got["method"] == "POST" and json.loads(got["body"]) == {"prompt": {}}
    async with client.post(url, json={"a": 1}, headers={**BEARER, "Cookie": "theme=dark"}) as resp:
        got = await resp.json()
    assert "authorization" not in got["headers"]
    assert got["headers"]["cookie"] == "theme=dark"
    # nginx's own hop (Host as the client sent it, as on ComfyUI's port), not the Python proxy's
    assert got["headers"]["host"] == f"127.0.0.1:{running.settings.dashboard_port}"
    assert got["headers"]["x-forwarded-host"] == got["headers"]["host"]
    assert len(echo.seen) == len(cases) + 1  # each request reached "ComfyUI" once


async def test_upload_streams_through_without_spooling(
    echo_stack: tuple[Nginx, Echo], client: aiohttp.ClientSession
) -> None:
    running, echo = echo_stack
    block = os.urandom(2**20)
    sent = hashlib.sha256()
    spool = running.run_dir / "client_body"
    peak = 0

    async def body() -> AsyncIterator[bytes]:  # 48 MiB, chunked: nothing for nginx to size up front
        nonlocal peak
        for i in range(48):
            piece = i.to_bytes(4, "big") + block[4:]
            sent.update(piece)
            peak = max(peak, sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()))
            yield piece

    async with client.post(
        running.dashboard + "/api/comfyui/upload/image",
        data=body(),
        headers={**BEARER, "Content-Type": "application/octet-stream"},
    ) as resp:
        assert resp.status == 200
        got = await resp.json()
    assert got["length"] == 48 * 2**20 and got["sha256"] == sent.hexdigest()
    assert peak == 0  # streamed to "ComfyUI", never written to nginx's body folder
    assert len(echo.seen) == 1


# ---- who may ------------------------------------------------------------------------------------
async def same_answer(client: aiohttp.ClientSession, stack: Stack, method: str, path: str, **kw: Any) -> Any:
    """The answer through nginx, checked against the dashboard's own (no nginx) for that request."""
    answers = []
    for base in (stack.dashboard, stack.app_url):
        async with client.request(method, base + path, allow_redirects=False, **kw) as resp:
            answers.append((resp.status, await resp.json(), resp.headers.get("WWW-Authenticate")))
    assert answers[0] == answers[1], answers
    return answers[0]


async def test_unauthenticated_gets_the_dashboard_401(stack: Stack, client: aiohttp.ClientSession) -> None:
    stack.recorder.paths.clear()
    for headers in ({}, {"Accept": "text/html"}, {"Authorization": "Bearer wrong"}):
        status, body, www = await same_answer(client, stack, "GET", "/api/comfyui" + VIEW, headers=headers)
        assert status == 401, headers  # an API path: JSON, never a redirect to /login
        assert body["error"]["code"] == "unauthorized"
        assert www.startswith("Bearer")
    status, body, _ = await same_answer(client, stack, "POST", "/api/comfyui/prompt", json={"prompt": {}})
    assert status == 401
    async with client.get(
        stack.dashboard + "/api/comfyui/system_stats", headers={"HX-Request": "true"}
    ) as resp:
        assert resp.status == 401
        assert resp.headers["HX-Redirect"].startswith("/login?next=/api/comfyui/system_stats")
    assert "/auth/verify" in stack.recorder.paths


async def test_bearer_and_session_reach_comfyui(stack: Stack, client: aiohttp.ClientSession) -> None:
    async with client.get(stack.dashboard + "/api/comfyui/system_stats", headers=BEARER) as resp:
        assert resp.status == 200
        assert "system" in await resp.json()
    session, _ = await login(client, stack.dashboard)
    async with client.get(
        stack.dashboard + "/api/comfyui/system_stats", headers={"Cookie": f"cd_session={session}"}
    ) as resp:
        assert resp.status == 200


async def test_cookie_changes_need_the_csrf_token(stack: Stack, client: aiohttp.ClientSession) -> None:
    session, csrf = await login(client, stack.dashboard)
    cookie = {"Cookie": f"cd_session={session}; cd_csrf={csrf}"}
    stack.recorder.paths.clear()
    status, body, _ = await same_answer(
        client, stack, "POST", "/api/comfyui/interrupt", json={}, headers=cookie
    )
    assert status == 403
    assert body["error"] == {
        "code": "csrf_failed",
        "message": "missing or wrong CSRF token",
        "hint": "send the X-CSRF-Token header with the value of the cd_csrf cookie",
    }
    foreign = {**cookie, "X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    status, body, _ = await same_answer(
        client, stack, "POST", "/api/comfyui/interrupt", json={}, headers=foreign
    )
    assert status == 403 and body["error"]["message"] == "cross-site request refused"
    stack.recorder.paths.clear()
    async with client.post(
        stack.dashboard + "/api/comfyui/interrupt", json={}, headers={**cookie, "X-CSRF-Token": csrf}
    ) as resp:
        assert resp.status == 200  # ComfyUI's answer
    assert stack.recorder.paths == ["/auth/verify"]
    async with client.post(
        stack.dashboard + "/api/comfyui/interrupt", json={}, headers={**BEARER, "Origin": "https://x.example"}
    ) as resp:
        assert resp.status == 200  # Bearer clients need no CSRF token


# ---- WebSocket ----------------------------------------------------------------------------------
async def test_websocket_through_nginx_gets_comfyui_status(
    stack: Stack, client: aiohttp.ClientSession
) -> None:
    session, _ = await login(client, stack.dashboard)
    for headers in (BEARER, {"Cookie": f"cd_session={session}", "Origin": stack.dashboard}):
        stack.recorder.paths.clear()
        async with client.ws_connect(
            f"{stack.dashboard}/api/comfyui/ws?clientId=direct-ws", headers=headers
        ) as ws:
            frame = await ws.receive(timeout=10)
            assert frame.type == aiohttp.WSMsgType.TEXT
            first = json.loads(frame.data)
            assert first["type"] == "status" and first["data"]["sid"] == "direct-ws"
        assert stack.recorder.paths == ["/auth/verify"]  # not relayed by the dashboard
    refused = {
        "none": {},
        "cross-site": {"Cookie": f"cd_session={session}", "Origin": "https://evil.example"},
    }
    for name, headers in refused.items():
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with client.ws_connect(f"{stack.dashboard}/api/comfyui/ws", headers=headers):
                pass
        assert info.value.status == (401 if name == "none" else 403), name


# ---- ComfyUI or the dashboard down ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("supervised", "message", "state"),
    [(True, "ComfyUI is starting", "starting"), (False, "ComfyUI is not answering", "unmanaged")],
)
async def test_comfyui_down_answers_the_dashboard_503(
    stack: Stack, client: aiohttp.ClientSession, tmp_path: Path, supervised: bool, message: str, state: str
) -> None:
    """ComfyUI's port closed: nginx replays the request to the dashboard, which says ComfyUI's state
    (the supervisor's, or the Python proxy's own failed try without one)."""
    settings = stack_settings(tmp_path / "ws", dashboard_internal=free_port(), comfyui_internal=free_port())
    svc = Services.create(settings)
    if supervised:
        svc.supervisor = FakeSupervisor("starting", "loading custom nodes")
    recorder = Recorder(create_app(settings, svc))
    with (
        Uvicorn(recorder, settings.dashboard_internal_port),
        run_nginx(settings, tmp_path / "run") as running,
    ):
        url = running.dashboard + "/api/comfyui"
        async with client.get(url + VIEW, headers=BEARER) as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["error"]["code"] == "service_unavailable"
        assert body["error"]["message"] == message
        assert body["error"]["details"]["state"] == state
        assert recorder.paths[-1] == "/api/comfyui/view"
        # A body may be partly read when ComfyUI's port refuses: nginx cannot send it again, so it
        # answers in the same error shape itself; the connection stays usable (no half-read body
        # left on it: each POST is followed by a GET on the same connection).
        bodies = [json.dumps({"prompt": {}}).encode()] + [io.BytesIO(os.urandom(8 * 2**20)) for _ in range(4)]
        for data in bodies:
            async with client.post(url + "/prompt", data=data, headers=BEARER) as resp:
                assert resp.status == 503, await resp.text()
                err = (await resp.json())["error"]
            assert err["code"] == "service_unavailable" and err["message"] == "ComfyUI is not answering"
            assert err["details"]["state"] == "unreachable"
            async with client.get(
                url + VIEW, headers=BEARER, timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["details"]["state"] == state
        # a refused request is still refused (401, not 503) while ComfyUI is down
        async with client.get(url + VIEW) as resp:
            assert resp.status == 401
        # repeated wrong tokens: the dashboard's rate limit, as on its own route
        statuses = []
        for _ in range(7):
            async with client.get(url + VIEW, headers={"Authorization": "Bearer wrong"}) as resp:
                statuses.append(resp.status)
                retry = resp.headers.get("Retry-After")
        assert statuses[:5] == [401] * 5 and statuses[-1] == 429 and retry is not None


async def test_dashboard_down_says_so(stack: Stack, client: aiohttp.ClientSession, tmp_path: Path) -> None:
    settings = stack_settings(
        tmp_path / "ws", dashboard_internal=free_port(), comfyui_internal=stack.comfy.port
    )
    with run_nginx(settings, tmp_path / "run") as running:
        async with client.get(running.dashboard + "/api/comfyui" + VIEW, headers=BEARER) as resp:
            assert resp.status == 503
            assert "dashboard is starting" in await resp.text()


# ---- without a password -------------------------------------------------------------------------
async def test_open_dashboard_still_refuses_cross_site_changes(
    stack: Stack, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = stack_settings(
        tmp_path / "ws", dashboard_internal=free_port(), comfyui_internal=stack.comfy.port, password=""
    )
    with (
        Uvicorn(create_app(settings), settings.dashboard_internal_port),
        run_nginx(settings, tmp_path / "run") as running,
    ):
        url = running.dashboard + "/api/comfyui"
        async with client.get(url + VIEW) as resp:
            assert resp.status == 200
        async with client.post(url + "/interrupt", json={}, headers={"Origin": running.dashboard}) as resp:
            assert resp.status == 200
        async with client.post(
            url + "/interrupt", json={}, headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "csrf_failed"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with client.ws_connect(url + "/ws", headers={"Origin": "https://evil.example"}):
                pass
        assert info.value.status == 403
