"""`/api/comfyui/*` over two fake ComfyUIs on one volume (COMFYUI_GPUS): prompts spread on the
shortest queue, ids reach their instance, lists are merged, one `/ws` client gets both instances'
events. A real uvicorn on 127.0.0.1 and real HTTP to the fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway
from fakes.comfyui_root.launch import Comfy
from graphs import quick, slow
from instances import run_instances

from .conftest import build

pytestmark = pytest.mark.timeout(120)
SLOW = 3000


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Comfy]]:
    with run_instances(tmp_path_factory.mktemp("vol"), 2) as running:
        yield running


async def _idle(http: aiohttp.ClientSession, comfy: Comfy) -> None:
    async with http.post(f"{comfy.url}/queue", json={"clear": True}):
        pass
    async with http.post(f"{comfy.url}/interrupt", json={}):
        pass
    for _ in range(200):
        async with http.get(f"{comfy.url}/prompt") as r:
            if (await r.json())["exec_info"]["queue_remaining"] == 0:
                return
        await asyncio.sleep(0.02)


@pytest.fixture
async def http(pair: list[Comfy]) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
        for comfy in pair:
            await _idle(session, comfy)


@pytest.fixture
async def server(
    tmp_path: Path, pair: list[Comfy], http: aiohttp.ClientSession, live: Any, free_port: int
) -> Any:
    app, svc = build(tmp_path / "ws")
    svc.comfyui = ComfyUIGateway(
        ComfyUIClient(http, pair[0].url, name="comfyui-0"), ComfyUIClient(http, pair[1].url, name="comfyui-1")
    )
    async with live(app, free_port) as running:
        yield running


async def held(http: aiohttp.ClientSession, comfy: Comfy) -> set[str]:
    async with http.get(f"{comfy.url}/queue") as r:
        queue = await r.json()
    return {item[1] for item in (*queue["queue_running"], *queue["queue_pending"])}


async def post_prompt(http: aiohttp.ClientSession, url: str, graph: dict[str, Any], **extra: Any) -> str:
    async with http.post(f"{url}/api/comfyui/prompt", json={"prompt": graph, **extra}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["prompt_id"])


async def test_eight_prompts_through_the_proxy_spread_four_and_four(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    ids = [await post_prompt(http, server.url, slow(SLOW, color=n)) for n in range(8)]
    on_a, on_b = await held(http, pair[0]), await held(http, pair[1])
    assert len(on_a) == 4 and len(on_b) == 4 and on_a | on_b == set(ids)
    async with http.get(f"{server.url}/api/comfyui/queue") as r:
        queue = await r.json()
    assert len(queue["queue_running"]) == 2 and len(queue["queue_pending"]) == 6
    async with http.get(f"{server.url}/api/comfyui/api/prompt") as r:  # the /api alias too
        assert await r.json() == {"exec_info": {"queue_remaining": 8}}
    async with http.get(f"{server.url}/api/queue") as r:  # the dashboard's own queue route
        mine = await r.json()
    assert len(mine["running"]) == 2 and len(mine["pending"]) == 6


async def test_the_dashboards_own_routes_spread_too(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    for n in range(4):
        async with http.post(f"{server.url}/api/generate", json={"workflow": slow(SLOW, color=50 + n)}) as r:
            assert r.status == 200, await r.text()
    assert len(await held(http, pair[0])) == 2 and len(await held(http, pair[1])) == 2


async def test_history_through_the_proxy_finds_prompts_of_either_instance(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    first = await post_prompt(http, server.url, quick(0x010101))
    await asyncio.sleep(0.002)  # create_time is in ms: the three must not tie across instances
    second = await post_prompt(http, server.url, quick(0x020202))
    await asyncio.sleep(0.002)
    async with http.post(f"{pair[1].url}/prompt", json={"prompt": quick(0x030303)}) as r:  # B's own page
        behind = (await r.json())["prompt_id"]
    found: dict[str, Any] = {}
    for _ in range(200):
        for pid in (first, second, behind):
            async with http.get(f"{server.url}/api/comfyui/history/{pid}") as r:
                assert r.status == 200
                found.update(await r.json())
        if len(found) == 3 and all(e["status"]["completed"] for e in found.values()):
            break
        await asyncio.sleep(0.02)
    assert set(found) == {first, second, behind}
    async with http.get(f"{server.url}/api/comfyui/history/00000000-0000-4000-8000-000000000000") as r:
        assert r.status == 200 and await r.json() == {}
    async with http.get(f"{server.url}/api/comfyui/history?max_items=2") as r:
        merged = await r.json()
    assert list(merged) == [second, behind]  # the two newest of both instances, oldest first
    async with http.get(f"{server.url}/api/comfyui/api/jobs?limit=2&offset=1") as r:
        jobs = await r.json()
    assert [j["id"] for j in jobs["jobs"]] == [second, first]
    assert jobs["pagination"]["total"] >= 3 and jobs["pagination"]["has_more"] is (
        jobs["pagination"]["total"] > 3
    )
    # an output file of B's prompt, from the shared volume
    image = found[behind]["outputs"]["2"]["images"][0]
    async with http.get(f"{server.url}/api/comfyui/view", params=image) as r:
        assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")


async def test_interrupt_and_delete_reach_the_instance_that_holds_the_prompt(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    on_a = await post_prompt(http, server.url, slow(SLOW, color=70))
    on_b = await post_prompt(http, server.url, slow(SLOW, color=71))
    pending_a = await post_prompt(http, server.url, slow(SLOW, color=72))
    assert on_a in await held(http, pair[0]) and on_b in await held(http, pair[1])
    async with http.post(f"{server.url}/api/comfyui/queue", json={"delete": [pending_a]}) as r:
        assert r.status == 200
    assert pending_a not in await held(http, pair[0])
    async with http.post(f"{server.url}/api/comfyui/interrupt", json={"prompt_id": on_b}) as r:
        assert r.status == 200
    for _ in range(200):
        if on_b not in await held(http, pair[1]):
            break
        await asyncio.sleep(0.02)
    assert on_b not in await held(http, pair[1]) and on_a in await held(http, pair[0])


async def test_a_temp_file_comes_from_the_instance_that_made_it(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    await post_prompt(http, server.url, slow(SLOW, color=80))  # A busy: the next goes to B
    pid = await post_prompt(http, server.url, slow(2, color=81))
    entry: dict[str, Any] = {}
    for _ in range(200):
        async with http.get(f"{server.url}/api/comfyui/history/{pid}") as r:
            entry = (await r.json()).get(pid, {})
        if entry.get("outputs"):
            break
        await asyncio.sleep(0.02)
    preview = entry["outputs"]["4"]["images"][0]
    assert preview["type"] == "temp" and (pair[1].layout.temp / "temp" / preview["filename"]).is_file()
    async with http.get(f"{server.url}/api/comfyui/view", params=preview) as r:
        assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")
    async with http.get(f"{server.url}/api/comfyui/view", params={**preview, "filename": "gone.png"}) as r:
        assert r.status == 404


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, done: Any, timeout: float = 20
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not done(seen):
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            seen.append(json.loads(msg.data))
    return seen


async def test_one_ws_client_gets_the_events_of_both_instances(
    server: Any, pair: list[Comfy], http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{server.ws_url}/api/comfyui/ws?clientId=merged-1") as ws:
        hello = await frames_until(ws, lambda s: len(s) >= 1)
        assert hello[0]["type"] == "status" and hello[0]["data"]["sid"] == "merged-1"
        await ws.send_str(json.dumps({"type": "feature_flags", "data": {}}))
        ids = [
            await post_prompt(http, server.url, slow(3, color=90 + n), client_id="merged-1") for n in range(2)
        ]
        seen = await frames_until(
            ws,
            lambda s: {f["data"].get("prompt_id") for f in s if f["type"] == "execution_success"} >= set(ids),
        )
    assert await held(http, pair[0]) == set() and ids[0] != ids[1]
    kinds = [f["type"] for f in seen]
    assert kinds.count("feature_flags") == 1  # asked of both, answered once
    assert sum("sid" in f["data"] for f in (*hello, *seen) if f["type"] == "status") == 1
    executed = {f["data"]["prompt_id"] for f in seen if f["type"] == "executed"}
    assert executed == set(ids)  # one ran on each instance: both reached this one socket
    for comfy, pid in zip(pair, ids, strict=True):
        async with http.get(f"{comfy.url}/history/{pid}") as r:
            assert pid in await r.json()
    totals = [f["data"]["status"]["exec_info"]["queue_remaining"] for f in seen if f["type"] == "status"]
    assert max(totals) == 2  # both instances' queues, summed


async def test_a_ws_client_without_an_id_gets_one_for_every_instance(
    server: Any, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{server.ws_url}/api/comfyui/ws") as ws:
        first = (await frames_until(ws, lambda s: len(s) >= 1))[0]
        sid = first["data"]["sid"]
        assert len(sid) == 32
        ids = [
            await post_prompt(http, server.url, slow(3, color=0x0C0C00 + n), client_id=sid) for n in range(2)
        ]
        seen = await frames_until(
            ws,
            lambda s: {f["data"].get("prompt_id") for f in s if f["type"] == "execution_success"} >= set(ids),
        )
    assert seen


@pytest.mark.real_comfyui
@pytest.mark.timeout(300)
async def test_two_real_comfyuis_on_the_cpu(tmp_path: Path, live: Any, free_port: int) -> None:
    """Two real ComfyUIs on one volume behind the proxy: prompts spread, one socket hears both,
    an interrupt without an id stops both, and history finds each prompt."""
    from fakes.comfyui_root.launch import real_comfyui_root

    root, why = real_comfyui_root()
    if root is None:
        pytest.skip(why)
    with run_instances(tmp_path / "vol", 2, root=root, timeout=240) as pair:
        app, svc = build(tmp_path / "ws")
        async with aiohttp.ClientSession() as http:
            svc.comfyui = ComfyUIGateway(
                ComfyUIClient(http, pair[0].url, name="comfyui-0"),
                ComfyUIClient(http, pair[1].url, name="comfyui-1"),
            )
            async with (
                live(app, free_port) as server,
                http.ws_connect(f"{server.ws_url}/api/comfyui/ws?clientId=real-2") as ws,
            ):
                assert (await frames_until(ws, lambda s: len(s) >= 1, 30))[0]["data"]["sid"] == "real-2"
                ids = [
                    await post_prompt(http, server.url, slow(SLOW, color=n), client_id="real-2")
                    for n in (1, 2)
                ]
                assert {pid for comfy in pair for pid in await held(http, comfy)} == set(ids)
                assert [len(await held(http, comfy)) for comfy in pair] == [1, 1]
                started = await frames_until(
                    ws,
                    lambda s: (
                        {f["data"].get("prompt_id") for f in s if f["type"] == "execution_start"} >= set(ids)
                    ),
                    60,
                )
                assert started
                async with http.post(f"{server.url}/api/comfyui/interrupt", json={}) as r:
                    assert r.status == 200
                # A real ComfyUI sends execution_interrupted before it records the prompt in
                # /history; `executing` with node null follows the record.
                ended = await frames_until(
                    ws,
                    lambda s: (
                        {f["data"].get("prompt_id") for f in s if f["type"] == "execution_interrupted"}
                        >= set(ids)
                        and {
                            f["data"].get("prompt_id")
                            for f in s
                            if f["type"] == "executing" and f["data"].get("node") is None
                        }
                        >= set(ids)
                    ),
                    60,
                )
                assert ended
                for pid in ids:
                    async with http.get(f"{server.url}/api/comfyui/history/{pid}") as r:
                        entry = (await r.json())[pid]
                    assert entry["status"]["status_str"] == "error"
