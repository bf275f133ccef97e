"""Queue an API prompt on a running ComfyUI, follow it over the WebSocket, fetch its outputs.

This is a small aiohttp client of its own (ComfyUI 0.33's protocol, shared COMFYUI.md §2-§3):
connect `/ws?clientId=ID` first, `POST /prompt {prompt, client_id}`, read frames until the
terminal one for our prompt (`execution_success` / `execution_error` / `execution_interrupted`),
then `GET /history/{id}` and download every output file through `/view`. If the WebSocket drops
before the end, `/history/{id}` is polled instead. Errors are made readable:

    PromptRejected   400 from POST /prompt (validation: node_errors by node, title and input)
    ExecutionFailed  the prompt ran and a node raised, or it was interrupted

Events are handed to `on_event(kind, data)` for display; nothing here prints.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp

from ..errors import AppError, InvalidInput, ServiceUnavailable

EventSink = Callable[[str, Mapping[str, Any]], None]
TERMINAL = ("execution_success", "execution_error", "execution_interrupted")
HISTORY_POLL_S = 0.5


class PromptRejected(InvalidInput):
    """ComfyUI refused the prompt (`POST /prompt` answered 400)."""

    code = "prompt_rejected"


class ExecutionFailed(AppError):
    """The prompt was accepted but did not finish."""

    status = 502
    code = "execution_failed"


@dataclass
class RunResult:
    prompt_id: str
    files: list[Path] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _title(prompt: Mapping[str, Any], node_id: Any) -> str:
    node = prompt.get(str(node_id)) or {}
    meta = node.get("_meta") if isinstance(node, Mapping) else None
    title = meta.get("title") if isinstance(meta, Mapping) else None
    cls = node.get("class_type") if isinstance(node, Mapping) else None
    if title and cls and title != cls:
        return f"node {node_id} ({title}, {cls})"
    return f"node {node_id} ({title or cls or '?'})"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def explain_rejection(body: Any, prompt: Mapping[str, Any]) -> str:
    """ComfyUI's 400 answer to POST /prompt as lines a user can act on (no tracebacks)."""
    if not isinstance(body, Mapping):
        return f"ComfyUI refused the prompt: {str(body)[:300]}"
    error = _map(body.get("error"))
    lines = [str(error.get("message") or "ComfyUI refused the prompt").strip()]
    extra = _map(error.get("extra_info"))
    if error.get("type") == "missing_node_type" and extra.get("class_type"):
        lines.append(
            f"  {_title(prompt, extra.get('node_id'))}: class {extra['class_type']!r} is not installed"
        )
    for node_id, info in _map(body.get("node_errors")).items():
        for item in _map(info).get("errors") or []:
            if not isinstance(item, Mapping):
                continue
            details = _map(item.get("extra_info"))
            where = _title(prompt, node_id)
            name = details.get("input_name")
            if name:
                where += f" input {name!r}"
            text = str(item.get("message") or item.get("type") or "invalid")
            detail = str(item.get("details") or "").strip()
            if detail and item.get("type") != "exception_during_validation":
                text += f": {detail}"
            lines.append(f"  {where}: {text}")
    return "\n".join(lines)


#: Failures whose cause a user can act on, by a phrase of ComfyUI's message -> what to do.
EXECUTION_HINTS = (
    (
        "Error while deserializing header",
        "the model file is not a valid safetensors file (a corrupt or incomplete download): "
        "delete it and install it again",
    ),
    (
        "Could not detect model type",
        "the file is not a checkpoint this loader knows: check it is in the right models folder",
    ),
)


def explain_execution_error(data: Mapping[str, Any], prompt: Mapping[str, Any]) -> str:
    where = _title(prompt, data.get("node_id"))
    kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]  # SafetensorError, not its module
    message = str(data.get("exception_message") or "").strip()
    text = f"{where} failed: {kind}: {message}" if message else f"{where} failed: {kind}"
    hints = [hint for phrase, hint in EXECUTION_HINTS if phrase in message]
    return text + "".join(f"\n  -> {hint}" for hint in hints)


def _safe_relative(subfolder: str, filename: str) -> PurePosixPath | None:
    parts = [p for p in PurePosixPath(subfolder or ".").parts if p not in ("", ".")]
    name = PurePosixPath(filename).name
    if not name or name in (".", "..") or any(p == ".." or p.startswith("/") for p in parts):
        return None
    return PurePosixPath(*parts, name)


class ComfyRunner:
    """One ComfyUI server at `base_url`; `run()` queues a prompt and waits for its outputs."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession,
        client_id: str | None = None,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.client_id = client_id or f"comfyui-docker-{uuid.uuid4().hex[:12]}"
        self.on_event = on_event or (lambda kind, data: None)
        self.clock = clock

    def _shared_client(self) -> Any:
        """The runtime's ComfyUI client (comfyui/client.py) when this build has it."""
        try:
            from ..comfyui.client import ComfyUIClient
        except ImportError:  # pragma: no cover - the client ships with the runtime
            return None
        return ComfyUIClient(self.session, self.base_url, self.client_id)

    async def submit(self, prompt: Mapping[str, Any]) -> str:
        client = self._shared_client()
        if client is not None:
            from ..comfyui.client import PromptRejected as Rejected

            try:
                result = await client.queue_prompt(prompt)
            except Rejected as exc:
                raise PromptRejected(
                    explain_rejection({"error": exc.error, "node_errors": exc.node_errors}, prompt)
                ) from None
            return str(result.prompt_id)
        body = {"prompt": prompt, "client_id": self.client_id}
        try:
            async with self.session.post(f"{self.base_url}/prompt", json=body) as resp:
                text = await resp.text()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(
                f"ComfyUI is not reachable at {self.base_url} ({exc.__class__.__name__})",
                hint="is it running? check with comfyui-docker health",
            ) from None
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            data = text
        if status == 200 and isinstance(data, Mapping) and data.get("prompt_id"):
            return str(data["prompt_id"])
        if status == 400:
            raise PromptRejected(explain_rejection(data, prompt))
        raise ServiceUnavailable(f"ComfyUI answered {status} to POST /prompt: {str(data)[:300]}")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        client = self._shared_client()
        if client is not None:
            found = await client.history(prompt_id)
            entry = found.get(prompt_id) if isinstance(found, Mapping) else None
            return entry if isinstance(entry, dict) else None
        async with self.session.get(f"{self.base_url}/history/{prompt_id}") as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
        entry = data.get(prompt_id) if isinstance(data, Mapping) else None
        return entry if isinstance(entry, dict) else None

    async def run(
        self, prompt: Mapping[str, Any], out_dir: Path | None = None, *, timeout_s: float | None = None
    ) -> RunResult:
        start = self.clock()
        ws_url = f"{self.base_url}/ws?clientId={self.client_id}"
        try:
            ws = await self.session.ws_connect(ws_url, heartbeat=30)
        except (aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailable(
                f"ComfyUI is not reachable at {self.base_url} ({exc.__class__.__name__})",
                hint="is it running? check with comfyui-docker health",
            ) from None
        try:
            prompt_id = await self.submit(prompt)
            self.on_event("queued", {"prompt_id": prompt_id, "nodes": len(prompt)})
            terminal = await self._follow(ws, prompt_id, prompt, start, timeout_s)
        finally:
            await ws.close()
        if terminal is None:
            terminal = await self._poll_history(prompt_id, start, timeout_s)
        kind, data = terminal
        if kind == "execution_error":
            raise ExecutionFailed(explain_execution_error(data, prompt), prompt_id=prompt_id)
        if kind == "execution_interrupted":
            raise ExecutionFailed(f"the run was interrupted at {_title(prompt, data.get('node_id'))}")
        entry = await self.history(prompt_id) or {}
        outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        result = RunResult(prompt_id, outputs=outputs or {})
        if out_dir is not None:
            result.files = await self.save_outputs(result.outputs, out_dir)
        result.seconds = self.clock() - start
        self.on_event("done", {"prompt_id": prompt_id, "files": [str(f) for f in result.files]})
        return result

    def _left(self, start: float, timeout_s: float | None) -> float | None:
        if timeout_s is None:
            return None
        left = timeout_s - (self.clock() - start)
        if left <= 0:
            raise ExecutionFailed(
                f"no result after {timeout_s:.0f} s", hint="raise --timeout or check ComfyUI's log"
            )
        return left

    async def _follow(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        prompt_id: str,
        prompt: Mapping[str, Any],
        start: float,
        timeout_s: float | None,
    ) -> tuple[str, Mapping[str, Any]] | None:
        while True:
            try:
                msg = await ws.receive(timeout=self._left(start, timeout_s))
            except TimeoutError:
                raise ExecutionFailed(f"no result after {timeout_s} s", hint="raise --timeout") from None
            if msg.type != aiohttp.WSMsgType.TEXT:
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return None
                continue  # binary preview frames
            try:
                frame = json.loads(msg.data)
            except json.JSONDecodeError:
                continue
            kind = frame.get("type")
            data = frame.get("data") if isinstance(frame.get("data"), Mapping) else {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "executing" and data.get("node") is not None:
                node = str(data["node"])
                self.on_event("node", {"node": node, "title": _title(prompt, node)})
            elif kind == "progress":
                self.on_event(
                    "progress",
                    {"node": str(data.get("node")), "value": data.get("value"), "max": data.get("max")},
                )
            elif kind == "execution_cached":
                self.on_event("cached", {"nodes": list(data.get("nodes") or [])})
            elif kind == "executed":
                self.on_event("executed", {"node": str(data.get("node")), "output": data.get("output")})
            elif kind in TERMINAL and data.get("prompt_id") == prompt_id:
                return str(kind), data

    async def _poll_history(
        self, prompt_id: str, start: float, timeout_s: float | None
    ) -> tuple[str, Mapping[str, Any]]:
        self.on_event("ws_lost", {"prompt_id": prompt_id})
        while True:
            entry = await self.history(prompt_id)
            status = entry.get("status") if entry else None
            if isinstance(status, Mapping) and status.get("completed") is not None:
                messages = status.get("messages") or []
                for item in reversed(messages):
                    if isinstance(item, list) and len(item) == 2 and item[0] in TERMINAL:
                        return str(item[0]), item[1] if isinstance(item[1], Mapping) else {}
                ok = status.get("status_str") == "success"
                return ("execution_success" if ok else "execution_error"), {}
            left = self._left(start, timeout_s)
            await asyncio.sleep(min(HISTORY_POLL_S, left) if left is not None else HISTORY_POLL_S)

    async def save_outputs(self, outputs: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """Download every file the outputs name (images, videos, audio...) into `out_dir`."""
        saved: list[Path] = []
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        for node_output in outputs.values():
            if not isinstance(node_output, Mapping):
                continue
            for items in node_output.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str):
                        continue
                    rel = _safe_relative(str(item.get("subfolder") or ""), item["filename"])
                    if rel is None:
                        continue
                    target = out_dir.joinpath(*rel.parts)
                    await self._download(item, target)
                    saved.append(target)
        return saved

    async def _download(self, item: Mapping[str, Any], target: Path) -> None:
        params = {
            "filename": str(item["filename"]),
            "subfolder": str(item.get("subfolder") or ""),
            "type": str(item.get("type") or "output"),
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        client = self._shared_client()
        if client is not None:
            with part.open("wb") as fh:
                async for block in client.view(
                    params["filename"], subfolder=params["subfolder"], kind=params["type"]
                ):
                    fh.write(block)
            part.replace(target)
            return
        async with self.session.get(f"{self.base_url}/view", params=params) as resp:
            if resp.status != 200:
                raise ExecutionFailed(f"could not fetch output {params['filename']}: HTTP {resp.status}")
            with part.open("wb") as fh:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    fh.write(chunk)
        part.replace(target)
