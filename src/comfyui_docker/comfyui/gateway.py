"""The one way to ComfyUI: everything outside `comfyui/` (the streaming proxy aside) calls this.

    submit(prompt)            queue a prompt on the instance with the shortest queue; remembers it
    run(prompt, out_dir)      submit and follow it to its end, saving its outputs (CLI, serverless)
    history(prompt_id)        its record, from the ComfyUI that holds it
    view(file, prompt_id)     stream an output file
    upload(name, data)        store a file in ComfyUI's input folder (POST /upload/image)
    queue()                   running and pending prompts, of every ComfyUI
    interrupt(prompt_id)      stop it (or whatever runs, on every ComfyUI, without an id)
    delete(prompt_id)         drop it from the pending queue
    node_definitions()        GET /object_info
    answers()                 whether ComfyUI answers now
    start_events(bus)         relay every ComfyUI's WebSocket onto the event bus

Callers never build a URL or choose a server. There is one ComfyUI, or one per GPU (COMFYUI_GPUS,
placement.py): `clients` holds one client per instance, named as its supervised service, and
routing.py chooses among them (a new prompt: the shortest queue of those running; a known prompt:
the instance it was sent to; an unknown id: every running instance is asked). All instances share
the volume (outputs, inputs, models, custom nodes), so files and node definitions come from any
running one, except temp files (previews), which live with the instance that made them.

Every client listens as the same relay `client_id`: a prompt submitted with it reports to the bus
whichever instance runs it. `status` frames carry the queue length of all instances together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from ..errors import NotFound, ServiceUnavailable
from ..events import EventBus, GenerationEvent
from .client import ComfyUIClient
from .errors import ComfyUIError
from .relay import Relay
from .routing import REMEMBERED, IsUp, Router
from .runner import EventSink, PromptRun, RunResult
from .shapes import HistoryEntry, JsonObject, OutputFile, Prompt, QueueSnapshot, Submitted, as_object

__all__ = ["REMEMBERED", "ComfyUIGateway"]
log = logging.getLogger(__name__)
T = TypeVar("T")


class ComfyUIGateway:
    """`ComfyUIGateway(client, *more, is_up=...)`: one client per ComfyUI instance, in order;
    `is_up(name)` says whether that instance's service runs (the supervisor's word)."""

    def __init__(self, client: ComfyUIClient, *more: ComfyUIClient, is_up: IsUp | None = None) -> None:
        for other in more:  # one relay id on every instance: their prompts all report to the bus
            other.client_id = client.client_id
        self.router = Router((client, *more), is_up)
        self.clients: tuple[ComfyUIClient, ...] = self.router.clients
        self._relays: list[Relay] = []
        self._remaining: dict[str, int] = {}

    # ---- which ComfyUI -----------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        """The WebSocket id our relays listen as: prompts sent with it report to the bus."""
        return self.clients[0].client_id

    @property
    def version(self) -> str | None:
        """ComfyUI's version, as a `/system_stats` last said (the readiness probe asks it)."""
        return next((c.version for c in self.clients if c.version), None)

    def client_for(self, prompt_id: str | None) -> ComfyUIClient:
        """The ComfyUI that holds `prompt_id` (a running one for ids it never saw)."""
        return self.router.holder(prompt_id) or self.router.any_up()

    async def _everywhere(self, call: Callable[[ComfyUIClient], Awaitable[T]]) -> list[T]:
        """`call` on every running instance at once; the answers of those that gave one (the
        first failure when none did)."""
        targets = self.router.up() or list(self.clients)
        results = await asyncio.gather(*(call(c) for c in targets), return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, ServiceUnavailable | ComfyUIError):
                raise failure
        if failures and not ok:
            raise failures[0]
        return ok

    # ---- prompts -----------------------------------------------------------------------------
    async def submit(
        self,
        prompt: Prompt,
        *,
        client_id: str | None = None,
        extra_data: Mapping[str, object] | None = None,
    ) -> Submitted:
        """Queue `prompt`; frames go to `client_id` (default: the relay, so they reach the bus)."""
        async with self.router.placing() as client:
            submitted = await client.submit(prompt, client_id=client_id, extra_data=extra_data)
            self.router.remember(submitted.prompt_id, client)
        return submitted

    async def run(
        self,
        prompt: Prompt,
        *,
        out_dir: Path | None = None,
        timeout_s: float | None = None,
        on_event: EventSink | None = None,
        extra_data: Mapping[str, object] | None = None,
    ) -> RunResult:
        """Submit and follow `prompt` to its end on one ComfyUI; save its outputs into `out_dir`."""
        async with self.router.placing() as client:  # counted in its queue until it is sent
            run = PromptRun(client, prompt, on_event=on_event, timeout_s=timeout_s)
            sent = asyncio.Event()

            async def submit(ws_id: str) -> Submitted:
                try:
                    answer = await client.submit(prompt, client_id=ws_id, extra_data=extra_data)
                finally:
                    sent.set()
                self.router.remember(answer.prompt_id, client)
                return answer

            task = asyncio.create_task(run.run(submit, out_dir))
            waiter = asyncio.create_task(sent.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                waiter.cancel()
        return await task

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        holder = self.router.holder(prompt_id)
        if holder is not None:
            return await holder.history(prompt_id)
        running = self.router.up()

        async def one(client: ComfyUIClient) -> HistoryEntry | None:
            try:
                return await client.history(prompt_id)
            except (ServiceUnavailable, ComfyUIError):
                return None

        for client, entry in zip(running, await asyncio.gather(*(one(c) for c in running)), strict=True):
            if entry is not None:
                self.router.remember(prompt_id, client)
                return entry
        return None

    async def view(self, file: OutputFile, *, prompt_id: str | None = None) -> AsyncIterator[bytes]:
        """Stream `file`. Output and input files are on the shared volume (any instance serves
        them); temp files live with the prompt's ComfyUI: pass the prompt id for those, else each
        running instance is tried in turn."""
        holder = self.router.holder(prompt_id)
        if file.type != "temp":
            tries = [self.router.any_up()]
        else:
            tries = [holder] if holder is not None else (self.router.up() or [self.clients[0]])
        for n, client in enumerate(tries):
            try:
                async for block in client.view(file):
                    yield block
                return
            except NotFound:  # raised before the first block: nothing was sent yet
                if n == len(tries) - 1:
                    raise

    async def upload(
        self, name: str, data: bytes, *, kind: str = "input", subfolder: str = "", overwrite: bool = True
    ) -> OutputFile:
        """Store `data` as `name` in ComfyUI's input folder (or `kind`: temp, output) for LoadImage
        and friends; returns the file as ComfyUI stored it. Every instance reads the same input
        folder on the volume, so any running one takes it."""
        return await self.router.any_up().upload(
            name, data, kind=kind, subfolder=subfolder, overwrite=overwrite
        )

    async def queue(self) -> QueueSnapshot:
        snapshot = QueueSnapshot()
        if not self.router.several:
            return await self.clients[0].queue()
        for part in await self._everywhere(lambda c: c.queue()):
            snapshot = snapshot.merged(part)
        return snapshot

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop `prompt_id` if it runs; without an id, whatever runs on every ComfyUI."""
        holder = self.router.holder(prompt_id)
        if prompt_id is not None and holder is not None:
            await holder.interrupt(prompt_id)
            return
        await self._everywhere(lambda c: c.interrupt(prompt_id))

    async def delete(self, prompt_id: str) -> None:
        """Drop a pending prompt (asked of every instance when its own is not known)."""
        holder = self.router.holder(prompt_id)
        if holder is not None:
            await holder.delete([prompt_id])
            return
        await self._everywhere(lambda c: c.delete([prompt_id]))

    async def answers(self, name: str | None = None) -> bool:
        """Whether every running ComfyUI (or the instance `name`) answers now (a supervisor may say
        running a moment before)."""
        for client in [self.router.named(name)] if name else (self.router.up() or self.clients):
            try:
                await client.system_stats(probe=True)
            except (ServiceUnavailable, ComfyUIError):
                return False
        return True

    async def node_definitions(self) -> JsonObject:
        """Every node class the running ComfyUI knows (instances share custom nodes and models)."""
        return await self.router.any_up().object_info()

    # ---- events ------------------------------------------------------------------------------
    def start_events(self, bus: EventBus, *, retry: float = 1.0, retry_cap: float = 5.0) -> None:
        """Relay each ComfyUI's WebSocket onto `bus` as `generation` events, until `stop_events`."""
        if self._relays:
            return
        self._relays = [
            Relay(client, bus, retry=retry, retry_cap=retry_cap, publish=self._publisher(bus))
            for client in self.clients
        ]
        for relay in self._relays:
            relay.start()

    def _publisher(self, bus: EventBus) -> Callable[[GenerationEvent], None]:
        """Publishes an instance's frames; a `status` frame says the queue of all of them."""

        def publish(event: GenerationEvent) -> None:
            if event.kind == "status":
                event = self._total_status(event)
            bus.publish(event)

        return publish

    def _total_status(self, event: GenerationEvent) -> GenerationEvent:
        """Remembers the instance's queue; with several, the frame says the total, and the
        instance's own length rides along as `instance_queue_remaining` (Home's per-GPU cards)."""
        status = as_object(event.payload.get("status"))
        info = as_object(status.get("exec_info"))
        remaining = info.get("queue_remaining")
        if not isinstance(remaining, int):
            return event
        self._remaining[event.instance] = remaining
        if not self.router.several:
            return event
        info = {**info, "queue_remaining": sum(self._remaining.values())}
        payload = {
            **event.payload,
            "status": {**status, "exec_info": info},
            "instance_queue_remaining": remaining,
        }
        return replace(event, payload=payload)

    @property
    def queue_lengths(self) -> dict[str, int]:
        """Each instance's prompts (running + pending), as its last `status` frame said."""
        return dict(self._remaining)

    async def stop_events(self) -> None:
        relays, self._relays = self._relays, []
        for relay in relays:
            await relay.stop()

    @property
    def relayed(self) -> bool:
        """Whether prompts sent with `client_id` report their progress on the bus."""
        return bool(self._relays)

    @property
    def events_connected(self) -> bool:
        return bool(self._relays) and all(r.connected for r in self._relays)
