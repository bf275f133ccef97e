"""Follow one prompt to its end on one ComfyUI: its WebSocket frames, its history, its output files.

`PromptRun(client, prompt).run(submit, out_dir)` connects `/ws?clientId=ID` first (a fresh id per
run, so concurrent runs and the relay never see each other's frames), submits with that id, reads
frames until the terminal one for this prompt (`execution_success` / `_error` / `_interrupted`),
then reads `/history/{id}` and downloads every output file through `/view`. If the WebSocket
drops before the end, `/history/{id}` is polled instead. A failure is ExecutionFailed with a
readable line (explain.py). Events go to `on_event(kind, data)` for display: queued, cached,
node, progress, executed, ws_lost, done. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from . import explain
from .client import ComfyUIClient
from .errors import ExecutionFailed
from .shapes import TERMINAL, HistoryEntry, JsonObject, OutputFile, Prompt, Submitted, as_object, output_files

EventSink = Callable[[str, Mapping[str, object]], None]
#: Submits the prompt so that its frames go to the given WebSocket id.
Submit = Callable[[str], Awaitable[Submitted]]
HISTORY_POLL_S = 0.5


@dataclass
class RunResult:
    prompt_id: str
    files: list[Path] = field(default_factory=list)
    outputs: JsonObject = field(default_factory=dict)
    seconds: float = 0.0


def _ignore(kind: str, data: Mapping[str, object]) -> None:
    return None


class PromptRun:
    """One prompt on one ComfyUI, from submission to its saved outputs."""

    def __init__(
        self,
        client: ComfyUIClient,
        prompt: Prompt,
        *,
        on_event: EventSink | None = None,
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prompt = prompt
        self.on_event = on_event or _ignore
        self.timeout_s = timeout_s
        self.clock = clock
        self.ws_id = f"comfyui-docker-{uuid.uuid4().hex[:12]}"
        self._start = clock()

    async def run(self, submit: Submit, out_dir: Path | None = None) -> RunResult:
        self._start = self.clock()
        ws = await self.client.connect(self.ws_id)
        try:
            submitted = await submit(self.ws_id)
            prompt_id = submitted.prompt_id
            self.on_event("queued", {"prompt_id": prompt_id, "nodes": len(self.prompt)})
            terminal = await self._follow(ws, prompt_id)
        finally:
            await ws.close()
        if terminal is None:
            terminal = await self._poll_history(prompt_id)
        kind, data = terminal
        if kind == "execution_error":
            raise ExecutionFailed(explain.execution_failure(data, self.prompt), prompt_id=prompt_id)
        if kind == "execution_interrupted":
            raise ExecutionFailed(explain.interruption(data, self.prompt), prompt_id=prompt_id)
        entry = await self.client.history(prompt_id)
        result = RunResult(prompt_id, outputs=entry.outputs if entry else {})
        if out_dir is not None:
            result.files = await self.save_outputs(result.outputs, out_dir)
        result.seconds = self.clock() - self._start
        self.on_event("done", {"prompt_id": prompt_id, "files": [str(f) for f in result.files]})
        return result

    def _left(self) -> float | None:
        if self.timeout_s is None:
            return None
        left = self.timeout_s - (self.clock() - self._start)
        if left <= 0:
            raise ExecutionFailed(
                f"no result after {self.timeout_s:g} s", hint="raise --timeout or check ComfyUI's log"
            )
        return left

    async def _follow(
        self, ws: aiohttp.ClientWebSocketResponse, prompt_id: str
    ) -> tuple[str, JsonObject] | None:
        """Frames until the end of `prompt_id`; None when the socket closes first.

        ComfyUI sends `execution_success`, then records the prompt in /history, then sends
        `executing` with `node: null` (COMFYUI.md §3): a success ends at the latter, so that
        /history holds the outputs when it is read. A failure ends at its terminal frame."""
        success: tuple[str, JsonObject] | None = None
        while True:
            try:
                msg = await ws.receive(timeout=self._left())
            except TimeoutError:
                raise ExecutionFailed(
                    f"no result after {self.timeout_s:g} s", hint="raise --timeout or check ComfyUI's log"
                ) from None
            if msg.type != aiohttp.WSMsgType.TEXT:
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return None  # /history is polled until the prompt is recorded there
                continue  # binary preview frames
            try:
                frame = as_object(json.loads(msg.data))
            except json.JSONDecodeError:
                continue
            kind = str(frame.get("type"))
            data = as_object(frame.get("data"))
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "executing" and data.get("node") is not None:
                node = str(data["node"])
                self.on_event("node", {"node": node, "title": explain.node_label(self.prompt, node)})
            elif kind == "progress":
                self.on_event(
                    "progress",
                    {"node": str(data.get("node")), "value": data.get("value"), "max": data.get("max")},
                )
            elif kind == "execution_cached":
                nodes = data.get("nodes")
                self.on_event("cached", {"nodes": list(nodes) if isinstance(nodes, list) else []})
            elif kind == "executed":
                self.on_event("executed", {"node": str(data.get("node")), "output": data.get("output")})
            elif kind in TERMINAL and data.get("prompt_id") == prompt_id:
                if kind != "execution_success":
                    return kind, data
                success = (kind, data)  # its outputs reach /history just after: wait for that
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return success or ("execution_success", {})

    async def _poll_history(self, prompt_id: str) -> tuple[str, JsonObject]:
        self.on_event("ws_lost", {"prompt_id": prompt_id})
        while True:
            entry: HistoryEntry | None = await self.client.history(prompt_id)
            if entry is not None and entry.finished:
                return entry.terminal()
            left = self._left()
            await asyncio.sleep(min(HISTORY_POLL_S, left) if left is not None else HISTORY_POLL_S)

    async def save_outputs(self, outputs: Mapping[str, object], out_dir: Path) -> list[Path]:
        """Download every file the outputs name (images, videos, audio...) into `out_dir`."""
        saved: list[Path] = []
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        for item in output_files(outputs):
            rel = item.relative_path()
            if rel is None:
                continue
            target = out_dir.joinpath(*rel.parts)
            await self._download(item, target)
            saved.append(target)
        return saved

    async def _download(self, item: OutputFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        with part.open("wb") as fh:
            async for block in self.client.view(item):
                fh.write(block)
        part.replace(target)
