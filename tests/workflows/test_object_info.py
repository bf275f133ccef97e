"""Node definitions: saved copies (plain/gzip), the copy on the volume, and a real HTTP fetch
(through the ComfyUI client, as the gateway does)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from comfyui_docker.comfyui import ComfyUIClient
from comfyui_docker.errors import InvalidInput, NotFound, ServiceUnavailable
from comfyui_docker.workflows.object_info import ObjectInfoStore, load_file

DEFS = {"EmptyImage": {"input": {"required": {"width": ["INT", {"default": 512}]}}, "output": ["IMAGE"]}}


def test_load_plain_and_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "oi.json"
    plain.write_text(json.dumps(DEFS))
    packed = tmp_path / "oi.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(DEFS).encode()))
    assert load_file(plain) == DEFS == load_file(packed)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not ComfyUI's /object_info"),
        (b'{"A": 1}', "no 'input'"),
        (b"\x1f\x8b broken", "broken gzip"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_files_are_explained(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "oi.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        load_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_file(tmp_path / "nope.json")


def test_store_saves_atomically_and_reloads_on_change(tmp_path: Path) -> None:
    store = ObjectInfoStore(tmp_path / "cache")
    assert store.load() is None
    store.save(DEFS)
    assert store.path == tmp_path / "cache" / "object_info.json"
    assert json.loads(store.path.read_text()) == DEFS
    assert not list(store.path.parent.glob(".*.tmp"))
    other = ObjectInfoStore(tmp_path / "cache")
    assert other.load() == DEFS
    changed = {**DEFS, "SaveImage": {"input": {}}}
    store.save(changed)
    assert other.load() == changed


@pytest.fixture
async def comfy(unused_tcp_port: int) -> AsyncIterator[dict[str, Any]]:
    state: dict[str, Any] = {"calls": 0, "status": 200}

    async def object_info(request: web.Request) -> web.Response:
        state["calls"] += 1
        return web.json_response(DEFS, status=state["status"])

    app = web.Application()
    app.router.add_get("/object_info", object_info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    state["url"] = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_fetch_refresh_and_fallback(tmp_path: Path, comfy: dict[str, Any]) -> None:
    store = ObjectInfoStore(tmp_path)
    async with aiohttp.ClientSession() as session:
        fetch = ComfyUIClient(session, comfy["url"]).object_info
        assert await store.get(fetch) == DEFS  # no copy yet: fetched and kept
        assert comfy["calls"] == 1 and store.path.is_file() and store.fetches == 1
        assert await store.get(fetch) == DEFS  # the copy is used
        assert comfy["calls"] == 1 and store.fetches == 1
        assert await store.get(fetch, refresh=True) == DEFS
        assert comfy["calls"] == 2 and store.fetches == 2
        comfy["status"] = 503
        assert await store.get(fetch, refresh=True) == DEFS  # ComfyUI not ready: the last copy
        assert store.fetches == 2
        with pytest.raises(ServiceUnavailable, match="503"):
            await store.refresh(fetch)


async def test_no_copy_and_no_comfyui(tmp_path: Path, unused_tcp_port: int) -> None:
    store = ObjectInfoStore(tmp_path)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ServiceUnavailable) as info:
            await store.get(ComfyUIClient(session, f"http://127.0.0.1:{unused_tcp_port}").object_info)
    assert "--object-info" in str(info.value) and "does not answer" in str(info.value)
    with pytest.raises(ServiceUnavailable, match="not reachable"):
        await store.get(None)  # no gateway in this process


async def test_an_answer_that_is_no_object_info_keeps_the_copy(tmp_path: Path) -> None:
    store = ObjectInfoStore(tmp_path)
    store.save(DEFS)

    async def broken() -> dict[str, Any]:
        return {}

    assert await store.get(broken, refresh=True) == DEFS
    with pytest.raises(ServiceUnavailable, match="not ComfyUI's /object_info"):
        await store.refresh(broken)
