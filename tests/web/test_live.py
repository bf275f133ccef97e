"""Against a real uvicorn server on 127.0.0.1 and the fake ComfyUI subprocess: the proxy (HTTP and
WebSocket, streamed both ways), the events WebSocket, and running workflows."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from comfyui_docker.events import TaskState

from .conftest import PASSWORD, build, token_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from fakes.comfyui_root.launch import run_comfyui

    with run_comfyui(tmp_path_factory.mktemp("comfy")) as c:
        yield c


def app_for(tmp_path: Path, port: int, **kw):
    return build(tmp_path / "ws", COMFYUI_INTERNAL_PORT=str(port), **kw)


async def test_proxy_json_query_status_and_big_streamed_file(tmp_path, comfy, live, free_port) -> None:
    app, _ = app_for(tmp_path, comfy.port)
    big = comfy.layout.output / "big.bin"
    block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    with big.open("wb") as fh:
        for _ in range(64):
            fh.write(block)
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/comfyui/system_stats") as r:
            assert r.status == 200
            assert str(comfy.layout.output) in (await r.json())["system"]["argv"]
        async with http.get(
            f"{server.url}/api/comfyui/view", params={"filename": "big.bin", "type": "output"}
        ) as r:
            assert r.status == 200
            assert int(r.headers["content-length"]) == 64 * 1024 * 1024
            assert "etag" in r.headers and "last-modified" in r.headers
            digest = hashlib.sha256()
            async for chunk in r.content.iter_chunked(1 << 20):
                digest.update(chunk)
            assert digest.hexdigest() == want
        async with http.get(f"{server.url}/api/comfyui/view?filename=nope.png&type=output") as r:
            assert r.status == 404
        async with http.get(f"{server.url}/api/comfyui/view?filename=../../etc/passwd") as r:
            assert r.status == 400
        async with (
            http.head(f"{comfy.url}/view?filename=big.bin") as direct,
            http.head(f"{server.url}/api/comfyui/view?filename=big.bin") as r,
        ):
            assert r.status == direct.status
            assert r.headers.get("content-length") == direct.headers.get("content-length")
        # upload through the proxy (multipart streamed to ComfyUI)
        form = aiohttp.FormData()
        form.add_field("image", b"\x89PNG fake bytes", filename="pic.png", content_type="image/png")
        form.add_field("subfolder", "proxied")
        async with http.post(f"{server.url}/api/comfyui/upload/image", data=form) as r:
            assert r.status == 200
            assert await r.json() == {"name": "pic.png", "subfolder": "proxied", "type": "input"}
        assert (comfy.layout.input / "proxied" / "pic.png").read_bytes() == b"\x89PNG fake bytes"
        # ComfyUI refuses a traversing upload; its 400 comes back and nothing lands outside
        form = aiohttp.FormData()
        form.add_field("image", b"x", filename="evil.png", content_type="image/png")
        form.add_field("subfolder", "../../escape")
        async with http.post(f"{server.url}/api/comfyui/upload/image", data=form) as r:
            assert r.status == 400
        assert not (comfy.layout.input / ".." / ".." / "escape").resolve().exists()
        # ComfyUI's own error statuses and bodies come back as they are
        async with http.post(f"{server.url}/api/comfyui/prompt", json={"prompt": {}}) as r:
            assert r.status == 400 and (await r.json())["error"]["type"] == "prompt_no_outputs"


async def test_proxy_websocket_and_run_workflow(tmp_path, comfy, live, free_port) -> None:
    app, svc = app_for(tmp_path, comfy.port)
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "proxied"}},
    }
    (svc.workspace.workflows / "demo.json").write_text(json.dumps(graph))
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.ws_url}/api/comfyui/ws?clientId=proxy-test") as ws:
            first = json.loads((await ws.receive(timeout=10)).data)
            assert first["type"] == "status" and first["data"]["sid"] == "proxy-test"
            await ws.send_str(json.dumps({"type": "feature_flags", "data": {}}))
            async with http.post(
                f"{server.url}/api/comfyui/prompt", json={"prompt": graph, "client_id": "proxy-test"}
            ) as r:
                pid = (await r.json())["prompt_id"]
            kinds = []
            while "execution_success" not in kinds:
                msg = json.loads((await ws.receive(timeout=20)).data)
                kinds.append(msg["type"])
            assert "feature_flags" in kinds and "executed" in kinds
        async with http.post(f"{server.url}/api/workflows/demo.json/run", json={"set": {"1.width": 32}}) as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["prompt_id"] and body["client_id"]
        async with http.get(f"{comfy.url}/history/{body['prompt_id']}") as r:
            hist = await r.json()
            for _ in range(100):
                if hist:
                    break
                await asyncio.sleep(0.05)
                async with http.get(f"{comfy.url}/history/{body['prompt_id']}") as r2:
                    hist = await r2.json()
            assert hist[body["prompt_id"]]["prompt"][2]["1"]["inputs"]["width"] == 32
        bad = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
        async with http.post(f"{server.url}/api/generate", json={"workflow": bad}) as r:
            assert r.status == 400
            err = (await r.json())["error"]
            assert err["code"] == "prompt_rejected" and "NoSuchNode" in err["message"]
            assert err["details"]["problems"][0].startswith("node 1 (NoSuchNode): the node type")
        async with http.get(f"{server.url}/api/queue") as r:
            assert set(await r.json()) == {"running", "pending"}
        assert pid


async def test_generate_route_sources_and_one_error_shape(tmp_path, comfy, live, free_port) -> None:
    """`POST /api/generate` queues a built-in template, an official one or a given workflow; every
    refusal (bad form values, ComfyUI's validation) has the one shape the pages read."""
    app, svc = app_for(tmp_path, comfy.port)
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        body = {"builtin": "demo", "values": {"width": "40", "height": "24"}, "client_id": "page-1"}
        async with http.post(f"{server.url}/api/generate", json=body) as r:
            queued = await r.json()
            assert r.status == 200, queued
        assert queued["client_id"] == "page-1" and queued["relay"] is False  # no relay: the page's socket
        assert queued["nodes"] == {"1": "EmptyImage", "2": "SaveImage"}
        for _ in range(100):
            entry = await svc.comfyui.history(queued["prompt_id"])
            if entry is not None and entry.finished:
                break
            await asyncio.sleep(0.05)
        assert entry is not None and entry.files()[0].filename.startswith("demo_")
        # bad form values: every field at once, as lines and by field
        async with http.post(
            f"{server.url}/api/generate", json={"builtin": "demo", "values": {"width": "x"}}
        ) as r:
            err = (await r.json())["error"]
            assert r.status == 400 and err["code"] == "invalid_input"
            assert err["details"]["fields"] == {"width": "a whole number"}
            assert err["details"]["problems"] == ["width: a whole number"]
        # ComfyUI's refusal: readable lines, and the missing model with the preset that has it
        ckpt = {
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
        }
        async with http.post(f"{server.url}/api/generate", json={"workflow": ckpt}) as r:
            err = (await r.json())["error"]
        assert r.status == 400 and err["code"] == "prompt_rejected"
        assert err["details"]["problems"] == [
            "node 4 (CheckpointLoaderSimple) input 'ckpt_name': the model 'sd15.safetensors' is not "
            "installed (expected in models/checkpoints)"
        ]
        (missing,) = err["details"]["missing"]
        assert (missing["folder"], missing["name"], missing["node_id"]) == (
            "checkpoints",
            "sd15.safetensors",
            "4",
        )
        assert missing["install"] == {"kind": "preset", "preset_id": "SD15_BASE"}
        assert "traceback" not in json.dumps(err["details"])
        # exactly one source
        async with http.post(f"{server.url}/api/generate", json={"builtin": "demo", "workflow": ckpt}) as r:
            assert r.status == 400 and "exactly one" in (await r.json())["error"]["message"]
        async with http.post(f"{server.url}/api/generate", json={"template": "no_such_template"}) as r:
            assert r.status == 404
        async with http.post(
            f"{server.url}/api/generate", json={"builtin": "demo", "client_id": "bad id!"}
        ) as r:
            assert r.status == 400 and "client_id" in (await r.json())["error"]["message"]


async def test_run_ui_format_converts(tmp_path, comfy, live, free_port) -> None:
    app, svc = app_for(tmp_path, comfy.port)
    ui = {
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "widgets_values": [64, 48, 1, 0],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "widgets_values": ["ui_run"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "version": 0.4,
    }
    (svc.workspace.workflows / "ui.json").write_text(json.dumps(ui))
    async with (
        live(app, free_port) as server,
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/workflows/ui.json/run") as r,
    ):
        body = await r.json()
        assert r.status == 200, body
    assert (svc.workspace.cache / "object_info.json").is_file()  # kept for when ComfyUI is down


async def test_proxy_carries_a_browser_post_past_comfyuis_origin_guard(
    tmp_path, comfy, live, free_port
) -> None:
    # A browser sends Origin on every POST. ComfyUI refuses one that differs from its loopback
    # Host, and the proxy talks to 127.0.0.1:<port>: the dashboard has checked the origin
    # itself (same-origin / CSRF), so it must not pass the browser's on.
    app, _ = app_for(tmp_path, comfy.port)
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    }
    graph["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "origin"}}
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        headers = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
        async with http.post(
            f"{server.url}/api/comfyui/prompt", json={"prompt": graph}, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["prompt_id"]


async def test_proxy_not_ready_and_unreachable(tmp_path, live, free_port) -> None:
    app, _ = build(tmp_path / "a", supervisor="backoff")
    async with live(app, free_port) as server, aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        async with http.get(f"{server.url}/api/comfyui/system_stats") as r:
            assert r.status == 503
            assert (await r.json())["error"]["details"]["state"] == "backoff"
        assert time.monotonic() - t0 < 2
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            async with http.ws_connect(f"{server.ws_url}/api/comfyui/ws"):
                pass
        assert exc.value.status == 503
    from fakes.comfyui_root.launch import free_port as another_port

    app, _ = build(tmp_path / "b", COMFYUI_INTERNAL_PORT=str(another_port()))
    async with (
        live(app, another_port()) as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/comfyui/system_stats") as r,
    ):
        assert r.status == 503 and (await r.json())["error"]["details"]["state"] == "unmanaged"


async def test_proxy_headers_gzip_and_credentials(tmp_path, live, free_port) -> None:
    seen: dict = {}

    async def echo(request: web.Request) -> web.StreamResponse:
        seen["headers"] = dict(request.headers)
        seen["query"] = request.query_string
        seen["raw_path"] = request.raw_path
        seen["body"] = await request.read()
        resp = web.Response(
            body=gzip.compress(b'{"ok": true}'),
            status=201,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                "X-Upstream": "yes",
                "Connection": "X-Private",
                "X-Private": "hop",
                "Set-Cookie": "comfy=1; Path=/",
            },
        )
        return resp

    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(upstream)
    await runner.setup()
    from fakes.comfyui_root.launch import free_port as another_port

    up_port = another_port()
    site = web.TCPSite(runner, "127.0.0.1", up_port)
    await site.start()
    try:
        app, _ = build(tmp_path / "ws", password=PASSWORD, COMFYUI_INTERNAL_PORT=str(up_port))
        token = token_of(app)
        async with (
            live(app, free_port) as server,
            aiohttp.ClientSession(auto_decompress=False) as http,
            http.put(
                URL(f"{server.url}/api/comfyui/some%2Fpath?a=1&b=%2F", encoded=True),
                data=b"payload",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Cookie": "cd_session=abc; cd_device=d.e.v; other=kept",
                    "X-Custom": "forwarded",
                    "Accept-Encoding": "gzip",
                },
            ) as r,
        ):
            assert r.status == 201
            assert r.headers["content-encoding"] == "gzip"
            assert gzip.decompress(await r.read()) == b'{"ok": true}'
            assert r.headers["x-upstream"] == "yes" and "x-private" not in r.headers
            assert r.headers["set-cookie"].startswith("comfy=1")
        h = {k.lower(): v for k, v in seen["headers"].items()}
        assert seen["body"] == b"payload"
        assert seen["raw_path"] == "/some%2Fpath?a=1&b=%2F"
        assert h["x-custom"] == "forwarded" and h["accept-encoding"] == "gzip"
        assert "authorization" not in h and h.get("cookie") == "other=kept"
    finally:
        await runner.cleanup()


async def test_events_websocket(tmp_path, live, free_port) -> None:
    app, svc = build(tmp_path / "ws", password=PASSWORD)
    token = token_of(app)
    auth = {"Authorization": f"Bearer {token}"}
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    async with live(app, free_port) as server, aiohttp.ClientSession(cookie_jar=jar) as http:
        baseline = svc.bus.subscriber_count  # the app's own listeners (preset list cache)
        async with http.ws_connect(f"{server.ws_url}/ws", headers=auth) as ws:
            hello = json.loads((await ws.receive(timeout=5)).data)
            assert hello["type"] == "hello" and hello["data"]["password_set"] is True
            assert hello["data"]["comfyui"]["state"] == "unmanaged"
            t0 = time.perf_counter()
            svc.bus.publish(TaskState(task_id="t9", preset_id="SD15_BASE", state="downloading"))
            msg = json.loads((await ws.receive(timeout=5)).data)
            latency = time.perf_counter() - t0
            assert msg["type"] == "task_state" and msg["data"]["task_id"] == "t9"
            assert latency < 0.5
            await ws.send_str('{"type": "ping"}')
            assert json.loads((await ws.receive(timeout=5)).data) == {"type": "pong"}
        async with http.ws_connect(f"{server.ws_url}/ws?types=download_progress", headers=auth) as ws:
            await ws.receive(timeout=5)
            svc.bus.publish(TaskState(task_id="t1", preset_id="X", state="queued"))
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.3)
        # subscriptions are released when sockets close
        for _ in range(50):
            if svc.bus.subscriber_count == baseline:
                break
            await asyncio.sleep(0.02)
        assert svc.bus.subscriber_count == baseline
        # a session cookie from another origin is refused (cross-site WebSocket hijacking)
        async with http.post(f"{server.url}/login", data={"password": PASSWORD}, allow_redirects=False) as r:
            assert r.status == 303
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            async with http.ws_connect(f"{server.ws_url}/ws", headers={"Origin": "https://evil.example"}):
                pass
        assert exc.value.status == 403
        async with http.ws_connect(f"{server.ws_url}/ws", headers={"Origin": server.url}) as ws:
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"


async def test_system_status_publisher(tmp_path) -> None:
    from comfyui_docker.web.sampler import SystemSampler, publish_loop

    _, svc = build(tmp_path / "ws")
    sub = svc.bus.subscribe(["system_status"])
    task = asyncio.create_task(publish_loop(svc, SystemSampler(), interval=0.05))
    try:
        first = await asyncio.wait_for(sub.get(), 5)
        second = await asyncio.wait_for(sub.get(), 5)
    finally:
        task.cancel()
    assert first.type == "system_status" and second.ts > first.ts
    assert first.disk["total"] > 0 and first.memory["total"] > 0


@pytest.mark.real_comfyui
async def test_proxy_and_run_against_a_real_comfyui(tmp_path, live, free_port) -> None:
    from fakes.comfyui_root.launch import real_comfyui_root, run_comfyui

    root, why = real_comfyui_root()
    if root is None:
        pytest.skip(why)
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "real"}},
    }
    with run_comfyui(tmp_path / "comfy", root=root, timeout=180) as comfy:
        app, svc = app_for(tmp_path, comfy.port)
        (svc.workspace.workflows / "demo.json").write_text(json.dumps(graph))
        async with live(app, free_port) as server, aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/api/comfyui/system_stats") as r:
                assert r.status == 200
            async with http.ws_connect(f"{server.ws_url}/api/comfyui/ws?clientId=real-test") as ws:
                first = json.loads((await ws.receive(timeout=30)).data)
                assert first["data"]["sid"] == "real-test"
                async with http.post(
                    f"{server.url}/api/comfyui/prompt",
                    json={"prompt": graph, "client_id": "real-test"},
                    headers={"Origin": server.url},  # as a browser sends it
                ) as r:
                    assert r.status == 200, await r.text()
                kinds: list[str] = []
                while "execution_success" not in kinds:
                    kinds.append(json.loads((await ws.receive(timeout=60)).data)["type"])
            async with http.post(f"{server.url}/api/workflows/demo.json/run") as r:
                assert r.status == 200, await r.text()
