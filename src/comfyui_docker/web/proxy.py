"""`/api/comfyui/{path}`: ComfyUI's HTTP API and WebSocket, carried through the dashboard.

Bodies stream both ways in chunks (a 1 GB `/view` or upload is never held in memory); status
codes, headers (hop-by-hop ones dropped) and query strings are kept; bodies are passed through
without decoding (gzip stays gzip). Our own credentials (session cookie, CSRF header, Bearer
token) are not forwarded to ComfyUI. When ComfyUI is not ready, the answer is a 503 carrying its
state, at once, never a hang. `/api/comfyui/ws` carries ComfyUI's WebSocket both ways. With
several ComfyUIs (one per GPU) fanout.py says which instance answers each request, and
fanout_ws.py merges their WebSockets.
In the image nginx serves `/api/comfyui/*` itself (children/nginx.py) and sends here only what it cannot
(refusals, ComfyUI down); this route serves all of it where the dashboard runs without nginx.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from fastapi import APIRouter, Request, WebSocket
from starlette.background import BackgroundTask
from starlette.requests import cookie_parser
from starlette.responses import Response, StreamingResponse
from starlette.types import Scope
from starlette.websockets import WebSocketDisconnect
from yarl import URL

from ..comfyui.routing import Router
from ..errors import ServiceUnavailable
from ..services import Services
from .auth import CSRF_COOKIE, DEVICE_COOKIE, SESSION_COOKIE, deny_websocket
from .dashboard import dashboard_of
from .deps import ServicesDep, comfyui_status, require_comfyui
from .errors import COMMON_ERRORS, error_responses
from .fanout import Fanout
from .fanout_ws import MergedSocket, with_client_id
from .pump import until_first_done

log = logging.getLogger(__name__)

READ_BUFFER = 1024 * 1024  # let the client buffer more than aiohttp's 64 KiB between reads
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Our credentials stay here. The browser's Origin and Sec-Fetch-Site stay here too: the dashboard
# has already checked them (same origin, CSRF), and ComfyUI refuses any Origin that is not its own
# loopback Host (127.0.0.1:<port>, which is what the proxy connects to), so every browser POST
# would get a 403.
_DROP_REQUEST = HOP_BY_HOP | {
    "host",
    "content-length",
    "x-csrf-token",
    "authorization",
    "cookie",
    "origin",
    "sec-fetch-site",
}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter(tags=["comfyui"])


def make_session() -> aiohttp.ClientSession:
    """The proxy's own client: no decompression, no cookie jar, no overall timeout."""
    return aiohttp.ClientSession(
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        connector=aiohttp.TCPConnector(limit=200, force_close=False),
        read_bufsize=READ_BUFFER,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )


def _connection_named(headers: list[tuple[str, str]]) -> set[str]:
    out: set[str] = set()
    for k, v in headers:
        if k == "connection":
            out.update(p.strip().lower() for p in v.split(",") if p.strip())
    return out


def forward_request_headers(request: Request) -> list[tuple[str, str]]:
    raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.scope["headers"]]
    named = _connection_named(raw)
    out = [(k, v) for k, v in raw if k not in _DROP_REQUEST and k not in named]
    cookies = [v for k, v in raw if k == "cookie"]
    if cookies:
        kept = {
            name: value
            for name, value in cookie_parser("; ".join(cookies)).items()
            if name not in (SESSION_COOKIE, CSRF_COOKIE, DEVICE_COOKIE)
        }
        if kept:
            out.append(("cookie", "; ".join(f"{k}={v}" for k, v in kept.items())))
    length = request.headers.get("content-length")
    if length is not None:
        out.append(("content-length", length))
    return out


def response_headers(resp: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    items = [(k.lower(), v) for k, v in resp.headers.items()]
    named = _connection_named(items)
    return [
        (k.encode("latin-1"), v.encode("latin-1")) for k, v in items if k not in HOP_BY_HOP and k not in named
    ]


PREFIX = b"/api/comfyui/"


def upstream_tail(scope: Scope, path: str) -> str:
    """What follows /api/comfyui/, path and query exactly as the client encoded them."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(PREFIX):
        tail = raw[len(PREFIX) :].decode("latin-1")
    else:
        tail = quote(path, safe="/:@!$&'()*+,;=-._~")
    qs = scope.get("query_string", b"")
    return tail + "?" + qs.decode("latin-1") if qs else tail


def upstream_url(svc: Services, scope: Scope, path: str) -> str:
    """ComfyUI's URL for this request, with the path and query exactly as the client encoded them."""
    return f"{svc.settings.comfyui_url}/{upstream_tail(scope, path)}"


def several(svc: Services) -> Router | None:
    """The gateway's router when there are several ComfyUIs (COMFYUI_GPUS): fanout.py routes then."""
    gateway = svc.comfyui
    return gateway.router if gateway is not None and gateway.router.several else None


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


class _Passthrough(StreamingResponse):
    """A streaming response whose headers are exactly the upstream's (minus hop-by-hop)."""

    def __init__(self, resp: aiohttp.ClientResponse, headers: list[tuple[bytes, bytes]], head: bool) -> None:
        async def body() -> AsyncIterator[bytes]:
            try:
                if head:
                    return
                async for chunk in resp.content.iter_any():  # what has arrived, no re-slicing
                    yield chunk
            finally:
                resp.release()

        super().__init__(body(), status_code=resp.status, background=BackgroundTask(resp.release))
        self.raw_headers = headers


async def proxy(path: str, request: Request, svc: ServicesDep) -> Response:
    require_comfyui(svc)
    session = dashboard_of(request).proxy_http()
    routes = several(svc)
    if routes is not None:
        fanout = Fanout(
            request,
            session,
            routes,
            upstream_tail(request.scope, path),
            forward_request_headers(request),
            lambda resp: _Passthrough(resp, response_headers(resp), head=request.method == "HEAD"),
        )
        return await fanout.answer()
    url = URL(upstream_url(svc, request.scope, path), encoded=True)
    method = request.method
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    try:
        resp = await session.request(
            method,
            url,
            headers=forward_request_headers(request),
            data=_body(request) if has_body and method not in ("GET", "HEAD") else None,
            allow_redirects=False,
            auto_decompress=False,
        )
    except (TimeoutError, aiohttp.ClientConnectionError) as exc:
        status = comfyui_status(svc)
        raise ServiceUnavailable(
            "ComfyUI is not answering",
            hint="it may be starting or restarting; try again in a few seconds",
            state=status.state if status.state != "running" else "unreachable",
            reason=type(exc).__name__,
        ) from None
    return _Passthrough(resp, response_headers(resp), head=method == "HEAD")


for _method in METHODS:
    router.add_api_route(
        "/api/comfyui/{path:path}",
        proxy,
        methods=[_method],
        operation_id=f"comfyui_proxy_{_method.lower()}",
        summary=f"ComfyUI's API, proxied ({_method}, streamed)",
        include_in_schema=_method not in ("HEAD", "OPTIONS"),  # those two: as GET, and CORS
        responses={
            200: {"description": "Whatever ComfyUI answered (status, headers and body kept)"},
            **error_responses(*COMMON_ERRORS, 404, 503),
        },
    )


@router.websocket("/api/comfyui/ws")
async def proxy_ws(websocket: WebSocket) -> None:
    dashboard = dashboard_of(websocket)
    svc = dashboard.services
    status = comfyui_status(svc)
    if not status.ready:
        await deny_websocket(websocket.scope, websocket.send, 503, f"ComfyUI is {status.state}", code=1013)
        return
    session = dashboard.proxy_http()
    qs = websocket.scope.get("query_string", b"").decode("latin-1")
    routes = several(svc)
    if routes is not None:
        merged = MergedSocket(websocket, session, routes, with_client_id(qs)[0])
        if not await merged.open():
            await deny_websocket(websocket.scope, websocket.send, 503, "no ComfyUI answers", code=1013)
            return
        await websocket.accept()
        await merged.run()
        return
    url = URL(f"{svc.settings.comfyui_url}/ws" + (f"?{qs}" if qs else ""), encoded=True)
    try:
        upstream = await session.ws_connect(url, autoping=True, max_msg_size=0, heartbeat=None)
    except (TimeoutError, aiohttp.ClientError):
        await deny_websocket(websocket.scope, websocket.send, 503, "ComfyUI is not answering", code=1013)
        return
    await websocket.accept()
    try:
        await _pump(websocket, upstream)
    finally:
        await upstream.close()


async def _pump(websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def downstream_to_upstream() -> None:
        while True:
            msg: Any = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await upstream.send_str(msg["text"])
            elif msg.get("bytes") is not None:
                await upstream.send_bytes(msg["bytes"])

    async def upstream_to_downstream() -> None:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await websocket.send_text(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await websocket.send_bytes(msg.data)
            else:
                break
        code = upstream.close_code or 1000
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code if 1000 <= code < 5000 and code != 1006 else 1011)

    await until_first_done(downstream_to_upstream(), upstream_to_downstream())
