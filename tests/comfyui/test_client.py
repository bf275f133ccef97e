"""The ComfyUI client, the gateway over it and the WebSocket relay against a running ComfyUI (the
fake; a real one with the marker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import graphs
from comfyui_docker.comfyui import (
    ComfyUIClient,
    ComfyUIGateway,
    ExecutionFailed,
    OutputFile,
    PromptRejected,
    QueueSnapshot,
    Relay,
)
from comfyui_docker.errors import InvalidInput, NotFound, ServiceUnavailable
from comfyui_docker.events import EventBus, GenerationEvent
from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import Comfy, http, run_comfyui

GRAPH = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0xABCDEF},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "client/test"}},
}


@pytest.fixture
async def client(comfy: Comfy) -> AsyncIterator[ComfyUIClient]:
    async with aiohttp.ClientSession() as session:
        yield ComfyUIClient(session, comfy.url)


async def test_system_stats_and_readiness(client: ComfyUIClient, comfy: Comfy) -> None:
    stats = await client.system_stats()
    assert client.version == stats["system"]["comfyui_version"]
    assert await client.is_ours(comfy.layout.output)
    assert not await client.is_ours("/somewhere/else")


async def test_unreachable_is_service_unavailable_and_not_ready() -> None:
    async with aiohttp.ClientSession() as session:
        dead = ComfyUIClient(session, "http://127.0.0.1:9")
        assert not await dead.is_ours("/x")
        with pytest.raises(ServiceUnavailable):
            await dead.queue()


async def test_prompt_relay_history_view(client: ComfyUIClient, comfy: Comfy) -> None:
    bus = EventBus()
    sub = bus.subscribe(["generation"])
    gateway = ComfyUIGateway(client)
    gateway.start_events(bus, retry=0.05)
    try:
        for _ in range(100):
            if gateway.events_connected:
                break
            await asyncio.sleep(0.05)
        assert gateway.events_connected and gateway.relayed
        graph = {**GRAPH, "1": {**GRAPH["1"], "inputs": {**GRAPH["1"]["inputs"], "color": 0x123123}}}
        result = await gateway.submit(graph)
        assert result.client_id == gateway.client_id == client.client_id  # the relay hears it
        assert gateway.client_for(result.prompt_id) is client
        kinds: list[str] = []
        events: list[GenerationEvent] = []
        while not (kinds and kinds[-1] == "executing" and events[-1].payload.get("node") is None):
            event = await asyncio.wait_for(sub.get(), 15)
            assert isinstance(event, GenerationEvent)
            if event.kind == "status":
                continue
            assert event.prompt_id == result.prompt_id
            kinds.append(event.kind)
            events.append(event)
        assert kinds[0] == "execution_start" and "executed" in kinds and "execution_success" in kinds
        entry = await gateway.history(result.prompt_id)
        assert entry is not None and entry.finished and entry.terminal()[0] == "execution_success"
        (image,) = entry.files()
        assert image == OutputFile("test_00001_.png", "client", "output")
        data = b"".join([chunk async for chunk in gateway.view(image, prompt_id=result.prompt_id)])
        assert data == (comfy.layout.output / "client" / "test_00001_.png").read_bytes()
        assert png.size_of(data) == (32, 24)
        assert await gateway.history("00000000-0000-0000-0000-000000000000") is None
    finally:
        await gateway.stop_events()
    assert not gateway.relayed


async def test_rejections_and_errors_are_typed(client: ComfyUIClient) -> None:
    with pytest.raises(PromptRejected) as caught:
        await client.submit({"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}}})
    assert caught.value.error["type"] == "prompt_outputs_failed_validation"
    errors = caught.value.node_errors["2"]["errors"]
    assert all("traceback" not in e["extra_info"] for e in errors)  # server paths scrubbed
    # (the fake also names the missing filename_prefix; a real ComfyUI stops at the bad link)
    assert caught.value.problems[0] == "node 2 (SaveImage): links to node '99', which is not in the workflow"
    with pytest.raises(NotFound):
        _ = [c async for c in client.view(OutputFile("missing.png"))]
    with pytest.raises(InvalidInput):
        _ = [c async for c in client.view(OutputFile("../../etc/passwd"))]


def _slow(frames: int, color: int = 7) -> dict[str, Any]:
    """A graph the fake ComfyUI runs for about frames x 10 ms. Give each run its own `color`: a
    prompt that once finished is answered from ComfyUI's cache (a real ComfyUI may finish one
    before an interrupt lands)."""
    return graphs.slow(frames, color, size=64)


async def test_queue_delete_interrupt_through_the_gateway(client: ComfyUIClient) -> None:
    gateway = ComfyUIGateway(client)
    running = await gateway.submit(_slow(3000))
    pending = await gateway.submit(_slow(2))
    await asyncio.sleep(0.2)
    queue = await gateway.queue()
    assert isinstance(queue, QueueSnapshot)
    assert [i.prompt_id for i in queue.running] == [running.prompt_id]
    assert [i.prompt_id for i in queue.pending] == [pending.prompt_id]
    assert queue.pending[0].nodes == 4 and queue.pending[0].client_id == client.client_id
    await gateway.delete(pending.prompt_id)
    assert not (await gateway.queue()).holds(pending.prompt_id)
    await gateway.interrupt(running.prompt_id)
    for _ in range(100):
        entry = await gateway.history(running.prompt_id)
        if entry is not None and entry.finished:
            break
        await asyncio.sleep(0.05)
    assert entry is not None and entry.terminal()[0] == "execution_interrupted"
    assert await gateway.history(pending.prompt_id) is None  # dropped before it ran


async def test_run_follows_to_the_saved_files_or_a_readable_failure(
    client: ComfyUIClient, tmp_path: Path
) -> None:
    gateway = ComfyUIGateway(client)
    seen: list[str] = []
    graph = {**GRAPH, "2": {**GRAPH["2"], "inputs": {**GRAPH["2"]["inputs"], "filename_prefix": "run/t"}}}
    result = await gateway.run(
        graph, out_dir=tmp_path / "out", timeout_s=30, on_event=lambda k, d: seen.append(k)
    )
    assert [f.relative_to(tmp_path / "out").as_posix() for f in result.files] == ["run/t_00001_.png"]
    assert png.size_of(result.files[0].read_bytes()) == (32, 24)
    assert seen[0] == "queued" and "node" in seen and seen[-1] == "done"
    assert gateway.client_for(result.prompt_id) is client

    async def stop_soon() -> None:
        for _ in range(100):
            if (await gateway.queue()).running:
                await gateway.interrupt()
                return
            await asyncio.sleep(0.05)

    stopper = asyncio.create_task(stop_soon())
    with pytest.raises(ExecutionFailed, match=r"interrupted at node 3 \(Slow, ColorTransfer\)"):
        await gateway.run(_slow(1000, color=8), timeout_s=30)
    await stopper
    with pytest.raises(ExecutionFailed, match=r"no result after 0\.3 s"):
        await gateway.run(_slow(3000, color=9), timeout_s=0.3)
    await gateway.interrupt()


async def test_api_keys_in_extra_data_stay_out_of_queue_and_history(
    client: ComfyUIClient, comfy: Comfy
) -> None:
    """ComfyUI hands `api_key_comfy_org` to API nodes only: /history keeps the rest of extra_data."""
    gateway = ComfyUIGateway(client)
    graph = {**GRAPH, "2": {**GRAPH["2"], "inputs": {**GRAPH["2"]["inputs"], "filename_prefix": "keys/t"}}}
    result = await gateway.run(graph, timeout_s=30, extra_data={"api_key_comfy_org": "k-123", "mine": 7})
    status, _, body = http("GET", f"{comfy.url}/history/{result.prompt_id}")
    assert status == 200
    extra = json.loads(body)[result.prompt_id]["prompt"][3]
    assert extra["mine"] == 7 and "api_key_comfy_org" not in extra
    assert b"k-123" not in body


async def test_upload_stores_input_files_as_comfyui_answers(client: ComfyUIClient, comfy: Comfy) -> None:
    """POST /upload/image through the gateway, the cases of the up_*.json recordings."""
    gateway = ComfyUIGateway(client)
    first = png.encode(8, 6, 0x102030, {})
    other = png.encode(9, 7, 0x405060, {})
    stored = await gateway.upload("up-pic.png", first, overwrite=False)
    assert stored == OutputFile("up-pic.png", "", "input")
    assert (comfy.layout.input / "up-pic.png").read_bytes() == first
    assert (await gateway.upload("up-pic.png", first, overwrite=False)).filename == "up-pic.png"  # same bytes
    renamed = await gateway.upload("up-pic.png", other, overwrite=False)
    assert renamed.filename == "up-pic (1).png"
    assert (comfy.layout.input / "up-pic (1).png").read_bytes() == other
    assert (await gateway.upload("up-pic.png", other)).filename == "up-pic.png"  # overwrite is the default
    assert (comfy.layout.input / "up-pic.png").read_bytes() == other
    deep = await gateway.upload("up-pic.png", first, subfolder="up/dir")
    assert deep == OutputFile("up-pic.png", "up/dir", "input")
    assert (comfy.layout.input / "up" / "dir" / "up-pic.png").read_bytes() == first
    chunks = [c async for c in gateway.view(deep)]
    assert b"".join(chunks) == first
    with pytest.raises(InvalidInput, match="refused the upload"):
        await gateway.upload("up-pic.png", first, subfolder="../../etc")


async def test_run_reads_the_outputs_once_comfyui_has_recorded_them(tmp_path: Path) -> None:
    """ComfyUI records a prompt in /history after its execution_success frame (before the final
    `executing` with node null): a run must not read /history in between (no outputs there yet)."""
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": "history_lag:0.4"}) as lagging:
        async with aiohttp.ClientSession() as session:
            gateway = ComfyUIGateway(ComfyUIClient(session, lagging.url))
            result = await gateway.run(GRAPH, out_dir=tmp_path / "out", timeout_s=30)
    assert [f.name for f in result.files] == ["test_00001_.png"]
    assert png.size_of(result.files[0].read_bytes()) == (32, 24)


async def test_definitions_and_readiness_through_the_gateway(client: ComfyUIClient) -> None:
    gateway = ComfyUIGateway(client)
    definitions = await gateway.node_definitions()
    assert "EmptyImage" in definitions and "input" in definitions["EmptyImage"]
    assert await gateway.answers()
    async with aiohttp.ClientSession() as session:
        assert not await ComfyUIGateway(ComfyUIClient(session, "http://127.0.0.1:9")).answers()


async def test_relay_reconnects(comfy: Comfy) -> None:
    """The relay keeps trying while ComfyUI is down and connects once it answers."""
    async with aiohttp.ClientSession() as session:
        bus = EventBus()
        dead = ComfyUIClient(session, "http://127.0.0.1:9")
        relay = Relay(dead, bus, retry=0.02, retry_cap=0.05)
        relay.start()
        await asyncio.sleep(0.3)
        assert not relay.connected and relay.connections == 0
        relay.client = ComfyUIClient(session, comfy.url)  # "ComfyUI came back"
        for _ in range(100):
            if relay.connected:
                break
            await asyncio.sleep(0.05)
        assert relay.connected and relay.connections == 1
        await relay.stop()


def test_relay_frame_conversion() -> None:
    from comfyui_docker.comfyui.relay import binary_event, to_event

    event = to_event({"type": "progress", "data": {"value": 1, "max": 4, "prompt_id": "p", "node": "3"}})
    assert event is not None and (event.kind, event.prompt_id, event.payload["max"]) == ("progress", "p", 4)
    assert to_event(["not", "a", "frame"]) is None
    preview = binary_event(b"\x00\x00\x00\x01\x00\x00\x00\x01JPEGDATA", "p")
    assert preview is not None and preview.payload["mime"] == "image/jpeg" and preview.prompt_id == "p"
    assert binary_event(b"\x00\x00\x00\x02\x00\x00\x00\x01", None) is None


async def test_relay_wakes_when_the_supervisor_says_running(comfy: Comfy) -> None:
    from comfyui_docker.events import ServiceState

    async with aiohttp.ClientSession() as session:
        bus = EventBus()
        relay = Relay(ComfyUIClient(session, "http://127.0.0.1:9"), bus, retry=5.0, retry_cap=5.0)
        relay.start()
        await asyncio.sleep(0.2)  # first attempt failed; the next one is 5 s away
        relay.client = ComfyUIClient(session, comfy.url)
        bus.publish(ServiceState(service="comfyui", state="running"))
        for _ in range(40):
            if relay.connected:
                break
            await asyncio.sleep(0.05)
        assert relay.connected  # well before the 5 s retry
        await relay.stop()
