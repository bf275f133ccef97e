"""Request bodies: 20 MB for every dashboard route, an 8 KiB URL-encoded form for /login, and
ComfyUI's API under /api/comfyui/ unlimited. Too big is refused before it is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import PASSWORD, build, client_for, token_of

MIB = 1024 * 1024


class Body:
    """A request body handed out in 1 MiB pieces, counting what the server pulled."""

    def __init__(self, total: int, piece: bytes = b"x" * MIB) -> None:
        self.total = total
        self.piece = piece
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            chunk = self.piece[: self.total - sent]
            sent += len(chunk)
            self.pulled = sent
            yield chunk


async def test_a_300_mb_multipart_login_is_refused_unread(locked) -> None:
    async with client_for(locked[0]) as c:
        body = Body(300 * MIB)
        r = await c.post(
            "/login",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=x", "content-length": str(300 * MIB)},
        )
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        assert body.pulled <= MIB  # at most the piece the test client had in hand


async def test_login_takes_only_an_urlencoded_form(locked) -> None:
    async with client_for(locked[0]) as c:
        body = Body(300 * MIB)  # no Content-Length: chunked
        r = await c.post("/login", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 415
        assert r.json()["error"]["code"] == "unsupported_media_type"
        assert body.pulled <= MIB
        r = await c.post("/login", json={"password": PASSWORD})
        assert r.status_code == 415
        # a form over 8 KiB without a length is cut off at 8 KiB
        big = Body(64 * 1024, b"password=" + b"a" * (64 * 1024))
        r = await c.post("/login", content=big, headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413 and big.pulled <= MIB
        r = await c.post("/login", data={"password": "p" * 1025})
        assert r.status_code == 400 and "password" in r.json()["error"]["message"]
        r = await c.post(
            "/login",
            content=b"password=%ff%fe",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code in (400, 401)
        assert (await c.post("/login", data={"password": PASSWORD, "next": "/x"})).status_code == 303


JSON_ROUTES = [
    "/api/models/missing",
    "/api/models/install-missing",
    "/api/generate",
    "/api/workflows/x.json/run",
    "/generate/queue",
    "/api/presets/install",
]


@pytest.mark.parametrize("path", JSON_ROUTES)
async def test_json_routes_refuse_40_mb_unread(locked, path: str) -> None:
    token = token_of(locked[0])
    async with client_for(locked[0]) as c:
        body = Body(40 * MIB, b"[" * MIB)
        r = await c.post(
            path,
            content=body,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/json",
                "content-length": str(40 * MIB),
            },
        )
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        assert body.pulled <= MIB


async def test_a_json_body_without_a_length_is_cut_off_at_20_mb(locked) -> None:
    token = token_of(locked[0])
    async with client_for(locked[0]) as c:
        body = Body(40 * MIB, b" " * MIB)
        r = await c.post(
            "/api/models/missing",
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert r.status_code == 413
        assert 20 * MIB <= body.pulled <= 22 * MIB


async def test_unauthenticated_big_bodies_get_401_unread(locked) -> None:
    async with client_for(locked[0]) as c:
        body = Body(40 * MIB)
        r = await c.post("/api/models/missing", content=body, headers={"content-length": str(40 * MIB)})
        assert r.status_code == 401 and body.pulled <= MIB


async def test_comfyui_api_streams_bigger_uploads(tmp_path: Path) -> None:
    """/api/comfyui/* (the Python proxy, as `make run` serves it) carries 25 MB to ComfyUI."""
    received = []

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(MIB):
            size += len(chunk)
        received.append(size)
        return web.json_response({"size": size})

    sink = web.Application(client_max_size=64 * MIB)
    sink.router.add_post("/upload/image", upload)
    runner = web.AppRunner(sink, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        app, _ = build(tmp_path / "ws", COMFYUI_INTERNAL_PORT=str(port))
        async with client_for(app) as c:
            r = await c.post(
                "/api/comfyui/upload/image",
                content=Body(25 * MIB),
                headers={"content-type": "application/octet-stream", "content-length": str(25 * MIB)},
            )
            assert r.status_code == 200 and r.json() == {"size": 25 * MIB}
    finally:
        await runner.cleanup()
    assert received == [25 * MIB]
