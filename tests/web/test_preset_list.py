"""`GET /api/presets` from a prepared response: ETag, 304, gzip, the fast path before the router,
and a rebuild only when the install state can have changed."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from comfyui_docker.events import TaskState
from comfyui_docker.web.api.preset_list import (
    MAX_LISTS,
    PreparedLists,
    PresetListFastPath,
    accepts_gzip,
    etag_matches,
    list_key,
)

from .conftest import LiveServer, build
from .fakes import PRESETS


async def test_etag_304_and_gzip(client, app_svc) -> None:
    plain = await client.get("/api/presets", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["content-type"] == "application/json"
    assert plain.headers["cache-control"] == "no-cache" and plain.headers["vary"] == "accept-encoding"
    etag = plain.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 26
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert set(plain.json()) == {"presets", "total", "problems"}

    packed = await client.get("/api/presets", headers={"accept-encoding": "gzip, deflate"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["etag"] == etag
    assert packed.json() == plain.json()  # httpx decodes it
    assert int(packed.headers["content-length"]) < len(plain.content)

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = await client.get("/api/presets", headers={"if-none-match": header})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag, header
    r = await client.get("/api/presets", headers={"if-none-match": '"stale"'})
    assert r.status_code == 200 and r.json() == plain.json()
    # one list built for all of these: every answer came from the one prepared response
    assert app_svc[1].presets.calls.count(("list", (None, None))) == 1


async def test_etag_changes_only_when_the_list_does(client, app_svc, monkeypatch: pytest.MonkeyPatch) -> None:
    lists: PreparedLists = app_svc[0].state.dashboard.preset_lists
    presets = app_svc[1].presets
    first = (await client.get("/api/presets")).headers["etag"]
    # a task event forces a rebuild; the same bytes keep the same ETag
    app_svc[1].bus.publish(TaskState(task_id="x", preset_id="SD15_BASE", state="done"))
    await asyncio.sleep(0.05)
    assert lists.get((None, None)) is None
    assert (await client.get("/api/presets", headers={"if-none-match": first})).status_code == 304
    assert presets.calls.count(("list", (None, None))) == 2
    # the install state changes: new bytes, new ETag, and the old one no longer matches
    monkeypatch.setitem(PRESETS, "SD15_BASE", {**PRESETS["SD15_BASE"], "installed": "installed"})
    lists.clear()
    r = await client.get("/api/presets", headers={"if-none-match": first})
    assert r.status_code == 200 and r.headers["etag"] != first
    assert r.json()["presets"]["SD15_BASE"]["installed"] == "installed"


async def test_filters_are_prepared_apart_and_odd_queries_go_to_the_route(client, app_svc) -> None:
    presets = app_svc[1].presets
    for _ in range(3):
        r = await client.get("/api/presets", params={"category": "flux", "type": "image"})
        assert list(r.json()["presets"]) == ["FLUX_SCHNELL"]
    assert presets.calls.count(("list", ("flux", "image"))) == 1
    # an unknown parameter is ignored by the route, as before
    r = await client.get("/api/presets", params={"foo": "1"})
    assert r.status_code == 200 and r.json()["total"] == 3
    # over the length limit: the route's 422, never a prepared list
    r = await client.get("/api/presets", params={"category": "x" * 65})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.head("/api/presets")
    assert r.status_code == 200 and r.content == b""  # HEAD is answered as GET, without the body


async def test_disabling_the_preset_manager_stops_the_fast_path(client, app_svc) -> None:
    assert (await client.get("/api/presets")).status_code == 200
    svc = app_svc[1]
    svc.settings = dataclasses.replace(svc.settings, enable_preset_manager=False)
    r = await client.get("/api/presets")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_fast_path_answers_only_prepared_lists() -> None:
    lists = PreparedLists()
    passed: list[str] = []

    async def router(scope: dict[str, Any], receive: Any, send: Any) -> None:
        passed.append(scope["path"] + "?" + scope["query_string"].decode())
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class Svc:
        presets: object = object()
        settings = type("S", (), {"enable_preset_manager": True})()

    app = PresetListFastPath(router, lists, Svc())  # type: ignore[arg-type]

    async def get(path: str, query: bytes = b"", **headers: str) -> tuple[int, dict[bytes, bytes], bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": query,
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        }
        await app(scope, None, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    assert (await get("/api/presets"))[0] == 299  # nothing prepared yet: the route
    body = json.dumps({"presets": {}, "total": 0, "problems": []}).encode()
    lists.put((None, None), body)
    status, headers, got = await get("/api/presets")
    assert status == 200 and got == body and headers[b"content-length"] == str(len(body)).encode()
    status, headers, got = await get("/api/presets", accept_encoding="gzip")
    assert headers[b"content-encoding"] == b"gzip" and gzip.decompress(got) == body
    etag = headers[b"etag"].decode()
    status, headers, got = await get("/api/presets", if_none_match=etag)
    assert status == 304 and got == b"" and b"content-length" not in headers
    assert (await get("/api/presets", b"type=video"))[0] == 299  # another list: not prepared
    assert (await get("/api/presets/tasks"))[0] == 299
    assert (await get("/api/presets", b"type=a&type=b"))[0] == 299
    # an outer middleware adding headers to the answer cannot change the prepared copy
    status, headers, _ = await get("/api/presets")
    assert len(headers) == 5
    Svc.presets = None  # type: ignore[assignment]
    assert (await get("/api/presets"))[0] == 299
    assert passed == [
        "/api/presets?",
        "/api/presets?type=video",
        "/api/presets/tasks?",
        "/api/presets?type=a&type=b",
        "/api/presets?",
    ]


def test_prepared_lists_ttl_clear_and_bound() -> None:
    now = [0.0]
    lists = PreparedLists(ttl=2.0, clock=lambda: now[0])
    first = lists.put((None, None), b"x")
    assert lists.get((None, None)) is first and lists.get(("a", None)) is None
    now[0] = 1.9
    assert lists.get((None, None)) is first
    now[0] = 2.1
    assert lists.get((None, None)) is None  # a file copied by hand shows within the TTL
    assert lists.put((None, None), b"x") is first  # same bytes: same prepared response, same ETag
    lists.clear()
    assert lists.get((None, None)) is None
    second = lists.put((None, None), b"y")
    assert second.etag != first.etag
    for i in range(MAX_LISTS + 5):
        lists.put((f"c{i}", None), b"z")
    kept = [i for i in range(MAX_LISTS + 5) if lists.get((f"c{i}", None)) is not None]
    assert kept == list(range(5, MAX_LISTS + 5))  # the oldest went first
    assert lists.get((None, None)) is None


def test_query_and_header_parsing() -> None:
    assert list_key(b"") == (None, None)
    assert list_key(b"category=flux&type=image") == ("flux", "image")
    assert list_key(b"type=") == (None, "")
    assert list_key(b"category=fl%C3%BCx") == ("fl\u00fcx", None)  # as Starlette reads it
    assert list_key(b"foo=1") is None
    assert list_key(b"type=a&type=b") is None
    assert list_key(b"category=" + b"x" * 65) is None
    assert accepts_gzip("gzip, deflate, br") and accepts_gzip("*") and accepts_gzip("GZIP;q=0.5")
    assert not accepts_gzip("identity") and not accepts_gzip("gzip;q=0") and not accepts_gzip("br")
    assert etag_matches('W/"a", "b"', '"a"') and etag_matches("*", '"a"')
    assert not etag_matches('"ab"', '"a"')


async def test_real_uvicorn_serves_gzip_and_304(tmp_path: Path, free_port: int) -> None:
    app, _ = build(tmp_path / "ws")
    async with LiveServer(app, free_port) as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/api/presets") as r:  # aiohttp asks for gzip
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            body = await r.json()
            etag = r.headers["ETag"]
        assert set(body["presets"]) == set(PRESETS)
        async with http.get(server.url + "/api/presets", headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and await r.read() == b""
        async with http.get(server.url + "/api/presets", headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and "Content-Encoding" not in r.headers and await r.json() == body
