"""The gateway over several ComfyUIs (one per GPU): prompts go to the shortest queue, a prompt id
finds its instance, the events of all reach the bus. Two fake ComfyUIs, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway, OutputFile
from comfyui_docker.comfyui.client import Timeouts
from comfyui_docker.errors import NotFound, ServiceUnavailable
from comfyui_docker.events import EventBus, GenerationEvent
from fakes.comfyui_root.launch import Comfy, run_comfyui
from graphs import quick, slow

SLOW = 3000  # frames: 30 s each at the fake's 10 ms a step; every test stops what it queued


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Comfy, Comfy]]:
    base = tmp_path_factory.mktemp("pair")
    with run_comfyui(base / "a") as a, run_comfyui(base / "b") as b:
        yield a, b


@pytest.fixture
async def clients(pair: tuple[Comfy, Comfy]) -> AsyncIterator[tuple[ComfyUIClient, ComfyUIClient]]:
    async with aiohttp.ClientSession() as session:
        a = ComfyUIClient(session, pair[0].url, name="comfyui-0")
        b = ComfyUIClient(session, pair[1].url, name="comfyui-1")
        yield a, b
        for client in (a, b):  # leave both idle for the next test
            await client.delete([i.prompt_id for i in (await client.queue()).pending])
            await client.interrupt()
            for _ in range(200):
                if await client.queue_remaining() == 0:
                    break
                await asyncio.sleep(0.02)


async def held(client: ComfyUIClient) -> set[str]:
    queue = await client.queue()
    return {i.prompt_id for i in (*queue.running, *queue.pending)}


async def test_eight_prompts_spread_four_and_four(clients: tuple[ComfyUIClient, ComfyUIClient]) -> None:
    a, b = clients
    gateway = ComfyUIGateway(a, b)
    ids = [(await gateway.submit(slow(SLOW, color=100 + n))).prompt_id for n in range(8)]
    on_a, on_b = await held(a), await held(b)
    assert len(on_a) == 4 and len(on_b) == 4 and on_a | on_b == set(ids)
    assert [gateway.client_for(i) for i in ids] == [a if i in on_a else b for i in ids]
    merged = await gateway.queue()
    assert len(merged.running) == 2 and len(merged.pending) == 6


async def test_prompts_sent_together_spread_too(clients: tuple[ComfyUIClient, ComfyUIClient]) -> None:
    a, b = clients
    gateway = ComfyUIGateway(a, b)
    sent = await asyncio.gather(*(gateway.submit(slow(SLOW, color=200 + n)) for n in range(8)))
    assert len(await held(a)) == 4 and len(await held(b)) == 4
    assert {s.prompt_id for s in sent} == (await held(a)) | (await held(b))


async def test_a_busy_instance_gets_the_next_prompts_last(
    clients: tuple[ComfyUIClient, ComfyUIClient],
) -> None:
    a, b = clients
    for n in range(3):  # someone queued three on A behind the gateway's back (A's own page)
        await a.submit(slow(SLOW, color=300 + n))
    gateway = ComfyUIGateway(a, b)
    for n in range(4):
        await gateway.submit(slow(SLOW, color=310 + n))
    assert len(await held(a)) == 4 and len(await held(b)) == 3  # B took 3, then A and B tied at 3


async def test_ids_reach_their_instance(clients: tuple[ComfyUIClient, ComfyUIClient]) -> None:
    a, b = clients
    gateway = ComfyUIGateway(a, b)
    first = await gateway.submit(slow(SLOW, color=400))  # runs on A
    second = await gateway.submit(slow(SLOW, color=401))  # runs on B
    third = await gateway.submit(slow(SLOW, color=402))  # pending on A
    assert gateway.client_for(second.prompt_id) is b
    await gateway.delete(third.prompt_id)
    assert third.prompt_id not in await held(a)
    await gateway.interrupt(second.prompt_id)
    for _ in range(200):
        entry = await gateway.history(second.prompt_id)
        if entry is not None and entry.finished:
            break
        await asyncio.sleep(0.02)
    assert entry is not None and entry.terminal()[0] == "execution_interrupted"
    assert first.prompt_id in await held(a)  # A's prompt was not touched


async def test_history_of_an_id_it_never_sent_is_found_on_either(
    clients: tuple[ComfyUIClient, ComfyUIClient],
) -> None:
    a, b = clients
    on_b = await b.submit(quick(0x0B0B0B))  # sent to B directly
    gateway = ComfyUIGateway(a, b)
    for _ in range(200):
        entry = await gateway.history(on_b.prompt_id)
        if entry is not None and entry.finished:
            break
        await asyncio.sleep(0.02)
    assert entry is not None and entry.status_str == "success"
    assert gateway.client_for(on_b.prompt_id) is b  # remembered once found
    assert await gateway.history("00000000-0000-4000-8000-000000000000") is None


async def test_temp_files_come_from_the_instance_that_made_them(
    clients: tuple[ComfyUIClient, ComfyUIClient], pair: tuple[Comfy, Comfy]
) -> None:
    a, b = clients
    gateway = ComfyUIGateway(a, b)
    await gateway.submit(slow(SLOW, color=500))  # A is busy: the preview goes to B
    result = await gateway.run(slow(2, color=501), timeout_s=30)
    assert gateway.client_for(result.prompt_id) is b
    preview = OutputFile.parse(result.outputs["4"]["images"][0])
    assert preview is not None and preview.type == "temp"
    fresh = ComfyUIGateway(a, b)  # knows no id: tries each running instance
    assert b"".join([c async for c in fresh.view(preview)]).startswith(b"\x89PNG")
    with pytest.raises(NotFound):
        _ = [c async for c in fresh.view(OutputFile("nothing.png", type="temp"))]


async def test_only_running_instances_get_prompts(clients: tuple[ComfyUIClient, ComfyUIClient]) -> None:
    a, b = clients
    up = {"comfyui-0": True, "comfyui-1": False}
    gateway = ComfyUIGateway(a, b, is_up=lambda name: up[name])
    for n in range(3):
        await gateway.submit(slow(SLOW, color=600 + n))
    assert len(await held(a)) == 3 and not await held(b)
    up["comfyui-0"] = False
    with pytest.raises(ServiceUnavailable, match="no ComfyUI instance is running"):
        await gateway.submit(slow(SLOW, color=610))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung ComfyUI)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_a_hung_instance_is_passed_over(
    clients: tuple[ComfyUIClient, ComfyUIClient], silent_port: int
) -> None:
    a, _ = clients
    hung = ComfyUIClient(
        a.session, f"http://127.0.0.1:{silent_port}", name="comfyui-1", timeouts=Timeouts(probe=0.3)
    )
    gateway = ComfyUIGateway(hung, a)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(2):
        await gateway.submit(slow(SLOW, color=700 + n))
    assert len(await held(a)) == 2 and loop.time() - started < 3


async def test_events_of_both_reach_the_bus_with_the_queue_of_both(
    clients: tuple[ComfyUIClient, ComfyUIClient],
) -> None:
    a, b = clients
    bus = EventBus()
    gateway = ComfyUIGateway(a, b)
    assert b.client_id == a.client_id == gateway.client_id  # one relay id on every instance
    async with bus.subscribe(["generation"]) as sub:
        gateway.start_events(bus, retry=0.05)
        try:
            for _ in range(100):
                if gateway.events_connected:
                    break
                await asyncio.sleep(0.05)
            assert gateway.events_connected
            runs = [await gateway.submit(slow(3, color=800 + n)) for n in range(2)]
            busy = await gateway.submit(slow(SLOW, color=802))  # stays queued: the total shows it
            by_prompt: dict[str, set[str]] = {}
            totals: list[int] = []
            async with asyncio.timeout(20):
                async for event in sub:
                    assert isinstance(event, GenerationEvent)
                    if event.prompt_id and event.kind == "execution_success":
                        by_prompt.setdefault(event.prompt_id, set()).add(event.instance)
                    if event.kind == "status":
                        totals.append(event.payload["status"]["exec_info"]["queue_remaining"])
                    if len(by_prompt) == 2 and totals and totals[-1] == 1:
                        break
        finally:
            await gateway.stop_events()
    assert by_prompt == {runs[0].prompt_id: {"comfyui-0"}, runs[1].prompt_id: {"comfyui-1"}}
    assert gateway.client_for(busy.prompt_id) is a
    assert max(totals) >= 2  # both instances' prompts counted together


async def test_one_instance_is_never_asked_its_queue(tmp_path: Path, pair: tuple[Comfy, Comfy]) -> None:
    async with aiohttp.ClientSession() as session:
        only = ComfyUIClient(session, pair[0].url)
        asked: list[str] = []

        async def counted() -> int:
            asked.append("queue")
            return 0

        only.queue_remaining = counted  # type: ignore[method-assign]
        gateway = ComfyUIGateway(only)
        submitted = await gateway.submit(quick(0x0A0A0A))
        assert gateway.client_for(submitted.prompt_id) is only and asked == []


class SlowToAccept:
    """An instance whose POST /prompt takes a while to answer; its queue counts a prompt once the
    answer is sent (as ComfyUI's does)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queued = 0

    async def queue_remaining(self) -> int:
        return self.queued

    async def accept(self) -> None:
        await asyncio.sleep(0.05)
        self.queued += 1


async def test_prompts_in_flight_count_until_the_queue_shows_them() -> None:
    from comfyui_docker.comfyui.routing import Router

    a, b = SlowToAccept("comfyui-0"), SlowToAccept("comfyui-1")
    router = Router([a, b])  # type: ignore[list-item]

    async def send() -> str:
        async with router.placing() as client:
            await client.accept()  # type: ignore[attr-defined]
            return client.name

    names = await asyncio.gather(*(send() for _ in range(8)))
    assert sorted(names).count("comfyui-0") == 4 and (a.queued, b.queued) == (4, 4)
    names = [await send() for _ in range(4)]  # one at a time: the queues alone decide
    assert names == ["comfyui-0", "comfyui-1", "comfyui-0", "comfyui-1"]
