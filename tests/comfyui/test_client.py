"""ComfyUIClient and the WebSocket relay against a running ComfyUI (the fake; real with the marker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from comfyui_docker.comfyui import ComfyUIClient, PromptRejected, Relay
from comfyui_docker.errors import InvalidInput, NotFound, ServiceUnavailable
from comfyui_docker.events import EventBus, GenerationEvent
from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import Comfy

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
    relay = Relay(client, bus, retry=0.05)
    relay.start()
    try:
        for _ in range(100):
            if relay.connected:
                break
            await asyncio.sleep(0.05)
        assert relay.connected
        graph = {**GRAPH, "1": {**GRAPH["1"], "inputs": {**GRAPH["1"]["inputs"], "color": 0x123123}}}
        result = await client.queue_prompt(graph)
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
        history = await client.history(result.prompt_id)
        image = history[result.prompt_id]["outputs"]["2"]["images"][0]
        assert image == {"filename": "test_00001_.png", "subfolder": "client", "type": "output"}
        data = b"".join([chunk async for chunk in client.view(image["filename"], subfolder="client")])
        assert data == (comfy.layout.output / "client" / "test_00001_.png").read_bytes()
        assert png.size_of(data) == (32, 24)
    finally:
        await relay.stop()


async def test_rejections_and_errors_are_typed(client: ComfyUIClient) -> None:
    with pytest.raises(PromptRejected) as caught:
        await client.queue_prompt({"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}}})
    assert caught.value.error["type"] == "prompt_outputs_failed_validation"
    errors = caught.value.node_errors["2"]["errors"]
    assert all(e["extra_info"].get("traceback", []) == [] for e in errors)  # server paths scrubbed
    with pytest.raises(NotFound):
        await client.models("clip")
    with pytest.raises(NotFound):
        _ = [c async for c in client.view("missing.png")]
    with pytest.raises(InvalidInput):
        _ = [c async for c in client.view("../../etc/passwd")]


async def test_upload_models_object_info_queue(client: ComfyUIClient) -> None:
    first = await client.upload_image(png.encode(4, 4, 1), "up.png")
    again = await client.upload_image(png.encode(4, 4, 2), "up.png")
    assert first == {"name": "up.png", "subfolder": "", "type": "input"}
    assert again["name"] == "up (1).png"
    with pytest.raises(InvalidInput):
        await client.upload_image(b"x", "a.png", subfolder="../../etc")
    assert "checkpoints" in await client.model_types()
    assert await client.models("checkpoints") == ["x.safetensors"]
    info = await client.object_info("LoadImage")
    assert "up.png" in info["LoadImage"]["input"]["required"]["image"][0]
    assert await client.object_info("NoSuchNode") == {}
    assert await client.queue_remaining() >= 0
    await client.clear_queue()
    await client.interrupt()
    await client.free()


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
