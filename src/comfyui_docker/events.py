"""The in-process event bus and its typed events.

Publishers call `bus.publish(event)` (never blocks, safe from the event loop thread). Each
subscriber owns a bounded queue; when a slow subscriber's queue is full its oldest event is
dropped and counted, so one stuck browser can never stall downloads or the supervisor.
Subscribers are woken by the queue itself: nothing polls on a timer.

Every event serialises to one JSON shape: `{"type": ..., "ts": ..., "data": {...}}`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def data(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("ts", None)
        return out

    def to_message(self) -> dict[str, Any]:
        return {"type": self.type, "ts": self.ts, "data": self.data()}


@dataclass(frozen=True)
class TaskState(Event):
    """An install task changed state: queued, downloading, verifying, done, failed, cancelled."""

    type: ClassVar[str] = "task_state"
    task_id: str
    preset_id: str
    state: str
    bytes_done: int = 0
    bytes_total: int = 0
    error: str | None = None


@dataclass(frozen=True)
class DownloadProgress(Event):
    """Bytes moved for one task (published a few times per second at most)."""

    type: ClassVar[str] = "download_progress"
    task_id: str
    preset_id: str
    file: str
    bytes_done: int
    bytes_total: int
    speed: float = 0.0  # bytes per second
    eta: float | None = None  # seconds


@dataclass(frozen=True)
class ServiceState(Event):
    """A supervised service (comfyui, nginx, sshd) changed state."""

    type: ClassVar[str] = "service_state"
    service: str
    state: str
    detail: str = ""
    pid: int | None = None


@dataclass(frozen=True)
class GenerationEvent(Event):
    """A frame relayed from ComfyUI's WebSocket (progress, executing, executed, errors...)."""

    type: ClassVar[str] = "generation"
    kind: str
    prompt_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    instance: str = "comfyui"  # the ComfyUI it came from (`comfyui-n`: GPU n's, COMFYUI_GPUS)


@dataclass(frozen=True)
class SystemStatus(Event):
    type: ClassVar[str] = "system_status"
    cpu_percent: float
    memory: dict[str, Any]
    disk: dict[str, Any]
    gpus: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NodeTaskState(Event):
    """A custom-node task (install, update, remove, requirements) moved on: a line of its output,
    or its state (running, done, failed)."""

    type: ClassVar[str] = "node_task"
    task_id: str
    action: str
    name: str
    state: str
    line: str = ""
    error: str | None = None


@dataclass(frozen=True)
class LogLine(Event):
    type: ClassVar[str] = "log_line"
    source: str
    line: str


class Subscription:
    """One subscriber's bounded queue; iterate it with `async for`."""

    def __init__(self, bus: EventBus, types: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.types is not None and event.type not in self.types:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:  # pragma: no cover - cannot be empty when full
                pass
            self.dropped += 1
            self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subs.discard(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    def subscribe(self, types: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, frozenset(types) if types is not None else None, maxsize)
        self._subs.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subs):
            sub.offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)


class Throttle:
    """At most one event per `interval` seconds per key; `force=True` always passes (state changes)."""

    def __init__(self, interval: float = 0.25, clock: Any = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def ready(self, key: str, *, force: bool = False) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if force or last is None or now - last >= self.interval:
            self._last[key] = now
            return True
        return False

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
