"""The one way to ComfyUI: everything outside `comfyui/` (the streaming proxy aside) calls this.

    submit(prompt)            queue a prompt; remembers which ComfyUI holds its id
    run(prompt, out_dir)      submit and follow it to its end, saving its outputs (CLI, serverless)
    history(prompt_id)        its record, from the ComfyUI that holds it
    view(file, prompt_id)     stream an output file
    upload(name, data)        store a file in ComfyUI's input folder (POST /upload/image)
    queue()                   running and pending prompts, of every ComfyUI
    interrupt(prompt_id)      stop it (or whatever runs, without an id)
    delete(prompt_id)         drop it from the pending queue
    node_definitions()        GET /object_info
    answers()                 whether ComfyUI answers now
    start_events(bus)         relay every ComfyUI's WebSocket onto the event bus

Callers never build a URL or choose a server. Today there is one ComfyUI (`clients` holds one
client); the seam for several is `pick()` (where a new prompt goes) and `client_for(prompt_id)`
(which one holds a prompt, from the ids `submit` remembered).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ..errors import ServiceUnavailable
from ..events import EventBus
from .client import ComfyUIClient
from .errors import ComfyUIError
from .relay import Relay
from .runner import EventSink, PromptRun, RunResult
from .shapes import HistoryEntry, JsonObject, OutputFile, Prompt, QueueSnapshot, Submitted

#: How many prompt ids the gateway remembers the ComfyUI of (oldest forgotten first).
REMEMBERED = 10_000


class ComfyUIGateway:
    def __init__(self, client: ComfyUIClient) -> None:
        self.clients: tuple[ComfyUIClient, ...] = (client,)
        self._holders: OrderedDict[str, ComfyUIClient] = OrderedDict()
        self._relays: list[Relay] = []

    # ---- which ComfyUI -----------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        """The WebSocket id our relay listens as: prompts sent with it report to the bus."""
        return self.clients[0].client_id

    @property
    def version(self) -> str | None:
        """ComfyUI's version, as its last `/system_stats` said (the readiness probe asks it)."""
        return self.clients[0].version

    def pick(self) -> ComfyUIClient:
        """The ComfyUI a new prompt goes to."""
        return self.clients[0]

    def client_for(self, prompt_id: str | None) -> ComfyUIClient:
        """The ComfyUI that holds `prompt_id` (the first one for ids it never saw)."""
        if prompt_id is not None:
            holder = self._holders.get(prompt_id)
            if holder is not None:
                return holder
        return self.clients[0]

    def _remember(self, prompt_id: str, client: ComfyUIClient) -> None:
        self._holders[prompt_id] = client
        self._holders.move_to_end(prompt_id)
        while len(self._holders) > REMEMBERED:
            self._holders.popitem(last=False)

    # ---- prompts -----------------------------------------------------------------------------
    async def submit(
        self,
        prompt: Prompt,
        *,
        client_id: str | None = None,
        extra_data: Mapping[str, object] | None = None,
    ) -> Submitted:
        """Queue `prompt`; frames go to `client_id` (default: the relay, so they reach the bus)."""
        client = self.pick()
        submitted = await client.submit(prompt, client_id=client_id, extra_data=extra_data)
        self._remember(submitted.prompt_id, client)
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
        client = self.pick()
        run = PromptRun(client, prompt, on_event=on_event, timeout_s=timeout_s)

        async def submit(ws_id: str) -> Submitted:
            submitted = await client.submit(prompt, client_id=ws_id, extra_data=extra_data)
            self._remember(submitted.prompt_id, client)
            return submitted

        return await run.run(submit, out_dir)

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        return await self.client_for(prompt_id).history(prompt_id)

    def view(self, file: OutputFile, *, prompt_id: str | None = None) -> AsyncIterator[bytes]:
        """Stream `file`. Output files are on the shared volume; temp files live with the prompt's
        ComfyUI, so pass the prompt id for those."""
        return self.client_for(prompt_id).view(file)

    async def upload(
        self, name: str, data: bytes, *, kind: str = "input", subfolder: str = "", overwrite: bool = True
    ) -> OutputFile:
        """Store `data` as `name` in ComfyUI's input folder (or `kind`: temp, output) for LoadImage
        and friends; returns the file as ComfyUI stored it. Every instance reads the same input
        folder on the volume, so this goes to the one a new prompt goes to."""
        return await self.pick().upload(name, data, kind=kind, subfolder=subfolder, overwrite=overwrite)

    async def queue(self) -> QueueSnapshot:
        snapshot = QueueSnapshot()
        for client in self.clients:
            snapshot = snapshot.merged(await client.queue())
        return snapshot

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop `prompt_id` if it runs; without an id, whatever runs on every ComfyUI."""
        if prompt_id is not None:
            await self.client_for(prompt_id).interrupt(prompt_id)
            return
        for client in self.clients:
            await client.interrupt()

    async def delete(self, prompt_id: str) -> None:
        """Drop a pending prompt."""
        await self.client_for(prompt_id).delete([prompt_id])

    async def answers(self) -> bool:
        """Whether every ComfyUI answers now (a supervisor may say running a moment before)."""
        for client in self.clients:
            try:
                await client.system_stats(probe=True)
            except (ServiceUnavailable, ComfyUIError):
                return False
        return True

    async def node_definitions(self) -> JsonObject:
        """Every node class the running ComfyUI knows (instances share custom nodes and models)."""
        return await self.clients[0].object_info()

    # ---- events ------------------------------------------------------------------------------
    def start_events(self, bus: EventBus, *, retry: float = 1.0, retry_cap: float = 5.0) -> None:
        """Relay each ComfyUI's WebSocket onto `bus` as `generation` events, until `stop_events`."""
        if self._relays:
            return
        self._relays = [Relay(client, bus, retry=retry, retry_cap=retry_cap) for client in self.clients]
        for relay in self._relays:
            relay.start()

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
