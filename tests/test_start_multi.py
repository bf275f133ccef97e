"""One ComfyUI per GPU, end to end (issue 16): `comfyui-docker start` as a real subprocess with
COMFYUI_GPUS=all on two GPUs declared by COMFYUI_TEST_GPUS, real nginx in front, two fake
ComfyUIs supervised by the real start-up path.

8 prompts through the API spread 4/4; an instance killed mid-queue (its PID, as the supervisor
reports it) is restarted while the other keeps working; `/history/<id>` through the proxy finds
prompts of either; one `/ws` client hears both; `/gpu/<n>/` on ComfyUI's port opens GPU n's
ComfyUI behind the same login; `/health/ready` lists both; Pro's restart reaches one instance.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.comfyui_root.launch import FAKE_ROOT, free_port
from graphs import quick, slow

pytestmark = [pytest.mark.nginx, pytest.mark.timeout(180)]
CLI = [sys.executable, "-m", "comfyui_docker"]
TOKEN = "multi-gpu-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SLOW = 2000  # frames of 0.01 s: 20 s, far longer than any test needs them queued


def two_free_ports() -> int:
    """A loopback port p with p + 1 free too (GPU n's ComfyUI listens on COMFYUI_INTERNAL_PORT + n)."""
    for _ in range(50):
        base = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise AssertionError("no two adjacent free ports")


@dataclass
class Pod:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    base: int  # GPU 0's ComfyUI; GPU 1's is base + 1

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['DASHBOARD_PORT']}"

    @property
    def comfyui(self) -> str:
        return f"http://127.0.0.1:{self.env['COMFYUI_PORT']}"

    def direct(self, gpu: int) -> str:
        return f"http://127.0.0.1:{self.base + gpu}"


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    if not any(Path(p).exists() for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")):
        pytest.skip("nginx is not installed")
    tmp = tmp_path_factory.mktemp("pod")
    base = two_free_ports()
    env = {
        **os.environ,
        "WORKSPACE_ROOT": str(tmp / "ws"),
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_PORT": str(free_port()),
        "DASHBOARD_INTERNAL_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(base),
        "COMFYUI_PYTHON": sys.executable,
        "COMFYUI_ROOT": str(FAKE_ROOT),
        "ENABLE_NGINX": "true",
        "COMFYUI_GPUS": "all",
        "COMFYUI_TEST_GPUS": "2x16",
        "ACCESS_PASSWORD": "correct horse battery staple",
        "API_TOKEN": TOKEN,
    }
    with (tmp / "start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Pod(proc, env, base)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def until(check: Any, timeout: float = 40.0) -> Any:
    """Poll `check()` (a coroutine function) until it returns something true; bounded."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s (last: {last})")


@pytest.fixture
async def http(pod: Pod) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=BEARER) as session:

        async def both_running() -> dict[str, Any] | None:
            async with session.get(f"{pod.api}/health/ready") as r:
                body = await r.json()
            states = [i["state"] for i in body.get("instances", [])]
            both = states == ["running", "running"] and body["status"] == "ok"
            return body if both and body["ready"] else None  # nginx too

        await until(both_running, 60)
        yield session
        for gpu in (0, 1):  # leave both idle for the next test
            async with session.post(f"{pod.direct(gpu)}/queue", json={"clear": True}):
                pass
            async with session.post(f"{pod.direct(gpu)}/interrupt", json={}):
                pass


async def held(http: aiohttp.ClientSession, pod: Pod, gpu: int) -> set[str]:
    async with http.get(f"{pod.direct(gpu)}/queue") as r:
        queue = await r.json()
    return {item[1] for item in (*queue["queue_running"], *queue["queue_pending"])}


async def post(http: aiohttp.ClientSession, pod: Pod, graph: dict[str, Any], **extra: Any) -> str:
    async with http.post(f"{pod.api}/api/comfyui/prompt", json={"prompt": graph, **extra}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["prompt_id"])


async def ready(http: aiohttp.ClientSession, pod: Pod) -> dict[str, Any]:
    async with http.get(f"{pod.api}/health/ready") as r:
        return dict(await r.json())


async def test_health_lists_both_instances(pod: Pod, http: aiohttp.ClientSession) -> None:
    body = await ready(http, pod)
    assert [(i["name"], i["gpu"], i["port"]) for i in body["instances"]] == [
        ("comfyui-0", 0, pod.base),
        ("comfyui-1", 1, pod.base + 1),
    ]
    assert body["ready"] and body["healthy"] and body["comfyui"]["state"] == "running"
    assert all(i["vram_total"] is None or i["vram_total"] > 0 for i in body["instances"])
    for gpu in (0, 1):  # each ComfyUI is ours, on its own port, database and temp folder
        async with http.get(f"{pod.direct(gpu)}/system_stats") as r:
            argv = (await r.json())["system"]["argv"]
        assert argv[argv.index("--port") + 1] == str(pod.base + gpu) and "--cpu" in argv
        assert f"comfyui-{pod.base + gpu}" in argv[argv.index("--temp-directory") + 1]
    logs = Path(pod.env["WORKSPACE_ROOT"]) / "logs"
    assert (logs / "comfyui-0.log").is_file() and (logs / "comfyui-1.log").is_file()


async def test_eight_prompts_through_the_api_spread_four_and_four(
    pod: Pod, http: aiohttp.ClientSession
) -> None:
    ids = [await post(http, pod, slow(SLOW, color=100 + n)) for n in range(8)]
    on_0, on_1 = await held(http, pod, 0), await held(http, pod, 1)
    assert len(on_0) == 4 and len(on_1) == 4 and on_0 | on_1 == set(ids)


async def test_a_killed_instance_is_restarted_and_the_other_keeps_working(
    pod: Pod, http: aiohttp.ClientSession
) -> None:
    queued = [await post(http, pod, slow(SLOW, color=200 + n)) for n in range(4)]
    assert len(await held(http, pod, 1)) == 2
    before = {i["name"]: i for i in (await ready(http, pod))["instances"]}
    os.kill(before["comfyui-1"]["pid"], signal.SIGKILL)  # mid-queue

    async def down() -> bool:
        states = {i["name"]: i["state"] for i in (await ready(http, pod))["instances"]}
        return states["comfyui-1"] != "running" and states["comfyui-0"] == "running"

    await until(down, 20)
    # the other keeps working: a new prompt goes to GPU 0 and runs there
    async with http.post(f"{pod.direct(0)}/queue", json={"clear": True}):
        pass
    async with http.post(f"{pod.direct(0)}/interrupt", json={}):
        pass
    done = await post(http, pod, quick(0x0A0B0C))

    async def finished() -> bool:
        async with http.get(f"{pod.api}/api/comfyui/history/{done}") as r:
            entry = (await r.json()).get(done)
        return bool(entry and entry["status"]["completed"])

    await until(finished, 20)
    async with http.get(f"{pod.direct(0)}/history/{done}") as r:
        assert done in await r.json()

    async def back() -> dict[str, Any] | None:
        now = {i["name"]: i for i in (await ready(http, pod))["instances"]}
        one = now["comfyui-1"]
        return now if one["state"] == "running" and one["pid"] != before["comfyui-1"]["pid"] else None

    now = await until(back, 40)
    assert now["comfyui-0"]["pid"] == before["comfyui-0"]["pid"]  # never touched
    assert not (await held(http, pod, 1)) & set(queued)  # what it held died with it
    # and it takes work again
    again = [await post(http, pod, slow(SLOW, color=300 + n)) for n in range(2)]
    assert set(again) & await held(http, pod, 1)


async def test_history_and_one_socket_reach_either_instance(pod: Pod, http: aiohttp.ClientSession) -> None:
    client_id = "multi-gpu-socket"
    async with http.ws_connect(f"{pod.api}/api/comfyui/ws?clientId={client_id}") as ws:
        # 0.3 s each: the first still runs when the second is placed, so it goes to the other GPU
        ids = [await post(http, pod, slow(30, color=400 + n), client_id=client_id) for n in range(2)]
        done: set[str] = set()
        deadline = time.monotonic() + 20
        while done != set(ids) and time.monotonic() < deadline:
            msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = msg.json()
            if frame.get("type") == "execution_success":
                done.add(frame["data"]["prompt_id"])
        assert done == set(ids)
    for pid in ids:
        async with http.get(f"{pod.api}/api/comfyui/history/{pid}") as r:
            assert pid in await r.json()
    # one ran on each GPU: the socket heard both instances
    where = {pid: gpu for gpu in (0, 1) for pid in ids if pid in await _history_of(http, pod, gpu, pid)}
    assert sorted(where.values()) == [0, 1]


async def _history_of(http: aiohttp.ClientSession, pod: Pod, gpu: int, pid: str) -> dict[str, Any]:
    async with http.get(f"{pod.direct(gpu)}/history/{pid}") as r:
        return dict(await r.json())


async def test_each_gpu_opens_at_its_path_behind_the_login(pod: Pod, http: aiohttp.ClientSession) -> None:
    for gpu in (0, 1):
        async with http.get(f"{pod.comfyui}/gpu/{gpu}/system_stats") as r:
            assert r.status == 200
            argv = (await r.json())["system"]["argv"]
        assert argv[argv.index("--port") + 1] == str(pod.base + gpu)
        # the raw path goes as the client encoded it: ComfyUI's userdata API needs %2F kept
        async with http.get(f"{pod.comfyui}/gpu/{gpu}/api/userdata/workflows%2Fnone.json") as r:
            assert r.status == 404
    async with http.get(f"{pod.comfyui}/gpu/1", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/gpu/1/"
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{pod.comfyui}/gpu/1/system_stats") as r:
            assert r.status == 401
        async with anonymous.get(
            f"{pod.comfyui}/gpu/1/", headers={"Accept": "text/html"}, allow_redirects=False
        ) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login")


async def test_restart_reaches_one_instance(pod: Pod, http: aiohttp.ClientSession) -> None:
    before = {i["name"]: i for i in (await ready(http, pod))["instances"]}
    async with http.post(f"{pod.api}/api/service/comfyui/restart?instance=comfyui-nine") as r:
        assert r.status == 404 and "comfyui-0, comfyui-1" in (await r.json())["error"]["hint"]
    async with http.post(f"{pod.api}/api/service/comfyui/restart?instance=comfyui-0") as r:
        assert r.status == 202 and (await r.json())["restarting"] == ["comfyui-0"]

    async def restarted() -> dict[str, Any] | None:
        now = {i["name"]: i for i in (await ready(http, pod))["instances"]}
        zero = now["comfyui-0"]
        return (
            now
            if zero["state"] == "running" and zero["restarts"] == before["comfyui-0"]["restarts"] + 1
            else None
        )

    now = await until(restarted, 40)
    assert now["comfyui-1"]["pid"] == before["comfyui-1"]["pid"]
    async with http.get(f"{pod.api}/") as r:  # Home: a card per GPU
        page = await r.text()
    assert 'id="instance-comfyui-0"' in page and 'id="instance-comfyui-1"' in page
    assert f"{pod.comfyui}/gpu/1/" in page
