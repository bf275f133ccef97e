"""ComfyUI's WebSocket → `GenerationEvent`s on our bus, reconnecting for as long as it runs.

We connect with the client's own `client_id`: ComfyUI sends execution frames only to the socket
named in a prompt's `client_id`, so the gateway submits with this id and every job's progress
reaches the bus. The gateway starts one relay per ComfyUI it talks to (`start_events`); each
event names its instance, and the relay wakes when that instance's supervised service runs.
`status` frames (queue length) are broadcast and are relayed too. Binary preview frames
(samplers) become `preview` events with the image base64.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import struct
from collections.abc import Callable

import aiohttp

from ..errors import ServiceUnavailable
from ..events import EventBus, GenerationEvent, ServiceState
from .client import ComfyUIClient

log = logging.getLogger(__name__)
PREVIEW_TYPES = {1: "image/jpeg", 2: "image/png"}


def to_event(frame: object, instance: str = "comfyui") -> GenerationEvent | None:
    """One JSON text frame → an event (None for frames that are not `{type, data}`)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return None
    data = frame.get("data")
    if not isinstance(data, dict):
        data = {}
    pid = data.get("prompt_id")
    return GenerationEvent(
        kind=frame["type"], prompt_id=str(pid) if pid else None, payload=data, instance=instance
    )


def binary_event(blob: bytes, prompt_id: str | None, instance: str = "comfyui") -> GenerationEvent | None:
    """ComfyUI's binary frame: u32 event type (1 = preview image), u32 image format, image bytes."""
    if len(blob) < 8:
        return None
    event_type, fmt = struct.unpack(">II", blob[:8])
    if event_type != 1:
        return None
    mime = PREVIEW_TYPES.get(fmt, "application/octet-stream")
    payload = {"mime": mime, "data": base64.b64encode(blob[8:]).decode("ascii")}
    return GenerationEvent(kind="preview", prompt_id=prompt_id, payload=payload, instance=instance)


class Relay:
    """Keeps one WebSocket to ComfyUI open and republishes its frames."""

    def __init__(
        self,
        client: ComfyUIClient,
        bus: EventBus,
        *,
        retry: float = 1.0,
        retry_cap: float = 5.0,
        publish: Callable[[GenerationEvent], None] | None = None,
    ) -> None:
        self.client = client
        self.bus = bus
        self.publish = publish or bus.publish
        self.retry = retry
        self.retry_cap = retry_cap
        self._wake = asyncio.Event()
        self.connected = False
        self.connections = 0
        self._task: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._current: str | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"{self.client.name}-ws-relay")
            self._follower = asyncio.create_task(
                self._follow_service(self.client.name), name="comfyui-ws-relay-wake"
            )

    def wake(self) -> None:
        """Retry now (the supervisor saw ComfyUI become ready): no frame of the first job is missed."""
        self._wake.set()

    async def _follow_service(self, service: str = "comfyui") -> None:
        """Wake the relay whenever the supervised `service` turns `running`."""
        async with self.bus.subscribe(["service_state"]) as sub:
            async for event in sub:
                if isinstance(event, ServiceState) and event.service == service and event.state == "running":
                    self.wake()

    async def stop(self) -> None:
        for task in (self._task, self._follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._follower = None
        self.connected = False

    async def run(self) -> None:
        delay = self.retry
        while True:
            try:
                await self._session()
                delay = self.retry
            except (aiohttp.ClientError, OSError, TimeoutError, ServiceUnavailable) as exc:
                log.debug("ComfyUI WebSocket: %s", exc)
            self.connected = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._wake.is_set():
                self._wake.clear()
                delay = self.retry
            else:
                delay = min(self.retry_cap, delay * 2)

    async def _session(self) -> None:
        async with await self.client.connect() as ws:
            self.connected = True
            self.connections += 1
            log.info("relaying ComfyUI events (client_id %s)", self.client.client_id)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = to_event(json.loads(msg.data), self.client.name)
                    except ValueError:
                        continue
                    if event is None:
                        continue
                    if event.kind == "executing":
                        self._current = event.prompt_id if event.payload.get("node") is not None else None
                    self.publish(event)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    preview = binary_event(msg.data, self._current, self.client.name)
                    if preview is not None:
                        self.publish(preview)
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
