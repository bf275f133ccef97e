"""One ComfyUI server's HTTP API and WebSocket (COMFYUI.md §2-§3), on a shared aiohttp session.

Every call has a timeout from one `Timeouts`. ComfyUI answers many errors with an empty body and
no Content-Type, so nothing here assumes JSON on a non-200. Failures are the runtime's errors
(comfyui/errors.py): no answer or a 503 is ServiceUnavailable, a 400 from `POST /prompt` is
PromptRejected (readable problems, missing models, scrubbed bodies), anything else unexpected
is ComfyUIError. Callers outside `comfyui/` go through the gateway, which picks the instance.
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ..errors import InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable
from . import explain
from .errors import ComfyUIError, unreachable
from .shapes import HistoryEntry, JsonObject, OutputFile, Prompt, QueueSnapshot, Submitted, as_object


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `request` covers ordinary calls; `/object_info` (1.6 MB, built by scanning every
    model folder) has its own; a streamed `/view` only bounds the wait between chunks."""

    connect: float = 3.0
    request: float = 30.0
    probe: float = 2.0
    object_info: float = 120.0
    stream_read: float = 60.0
    heartbeat: float = 30.0


TIMEOUTS = Timeouts()


class ComfyUIClient:
    """`ComfyUIClient(session, settings.comfyui_url)`; `client_id` names the relay's WebSocket,
    `name` the supervised service it talks to (`comfyui`, or `comfyui-n` for GPU n's)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        client_id: str | None = None,
        timeouts: Timeouts = TIMEOUTS,
        name: str = "comfyui",
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.client_id = client_id or uuid.uuid4().hex
        self.timeouts = timeouts
        self.version: str | None = None

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, connect=self.timeouts.connect)

    # ---- plumbing ----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        total: float | None = None,
    ) -> tuple[int, bytes]:
        timeout = self._timeout(self.timeouts.request if total is None else total)
        try:
            async with self.session.request(method, self.base_url + path, json=body, timeout=timeout) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(self.base_url, exc) from None

    def _failed(self, status: int, what: str, body: bytes) -> ServiceUnavailable | ComfyUIError:
        if status == 503:
            return ServiceUnavailable(f"ComfyUI answered 503 to {what}", state="unavailable")
        return ComfyUIError(
            f"ComfyUI answered {status} to {what}", body=body[:500].decode("utf-8", "replace")
        )

    async def _json(self, method: str, path: str, *, total: float | None = None) -> object:
        status, raw = await self._request(method, path, total=total)
        if status != 200:
            raise self._failed(status, f"{method} {path}", raw)
        try:
            data: object = json.loads(raw)
        except ValueError:
            raise ComfyUIError(f"ComfyUI sent something that is not JSON for {method} {path}") from None
        return data

    async def _post_ok(self, path: str, body: object) -> None:
        status, raw = await self._request("POST", path, body=body)
        if status != 200:
            raise self._failed(status, f"POST {path}", raw)

    # ---- server ------------------------------------------------------------------------------
    async def system_stats(self, *, probe: bool = False) -> JsonObject:
        stats = as_object(
            await self._json("GET", "/system_stats", total=self.timeouts.probe if probe else None)
        )
        version = as_object(stats.get("system")).get("comfyui_version")
        self.version = str(version) if version is not None else None
        return stats

    async def is_ours(self, output_dir: Path | str) -> bool:
        """Readiness (COMFYUI.md §7): /system_stats is 200 and its argv holds our --output-directory."""
        try:
            stats = await self.system_stats(probe=True)
        except (ServiceUnavailable, ComfyUIError):
            return False
        argv = as_object(stats.get("system")).get("argv")
        return isinstance(argv, list) and str(output_dir) in argv

    async def object_info(self) -> JsonObject:
        """Every node definition (`GET /object_info`)."""
        return as_object(await self._json("GET", "/object_info", total=self.timeouts.object_info))

    # ---- prompts and queue -------------------------------------------------------------------
    async def submit(
        self,
        prompt: Prompt,
        *,
        client_id: str | None = None,
        extra_data: Mapping[str, object] | None = None,
    ) -> Submitted:
        """`POST /prompt`; its execution frames go to the WebSocket `client_id` (ours by default)."""
        cid = client_id or self.client_id
        body: JsonObject = {"prompt": prompt, "client_id": cid}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        status, raw = await self._request("POST", "/prompt", body=body)
        try:
            data: object = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if status == 400:
            raise explain.rejection(data, prompt)
        answer = as_object(data)
        if status != 200 or not answer.get("prompt_id"):
            raise self._failed(status, "POST /prompt", raw)
        number = answer.get("number")
        return Submitted(
            prompt_id=str(answer["prompt_id"]),
            number=number if isinstance(number, int) else 0,
            client_id=cid,
            node_errors=as_object(answer.get("node_errors")),
        )

    async def queue(self) -> QueueSnapshot:
        return QueueSnapshot.parse(await self._json("GET", "/queue"))

    async def queue_remaining(self) -> int:
        """Prompts running and pending (`GET /prompt`: a few bytes, answered at once)."""
        info = as_object(
            as_object(await self._json("GET", "/prompt", total=self.timeouts.probe)).get("exec_info")
        )
        remaining = info.get("queue_remaining")
        if not isinstance(remaining, int):
            raise ComfyUIError("ComfyUI's GET /prompt has no queue_remaining")
        return remaining

    async def delete(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts from the queue (a running one is stopped with `interrupt`)."""
        await self._post_ok("/queue", {"delete": prompt_ids})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt (only if it is `prompt_id`, when given)."""
        await self._post_ok("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The record of one prompt; None while it is queued or running, or when it is unknown."""
        found = as_object(await self._json("GET", f"/history/{prompt_id}"))
        entry = found.get(prompt_id)
        return HistoryEntry.parse(entry) if isinstance(entry, dict) else None

    # ---- files -------------------------------------------------------------------------------
    async def view(self, file: OutputFile, *, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        """Stream a file from /view (never loaded whole). NotFound on 404, InvalidInput on 400."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeouts.connect, sock_read=self.timeouts.stream_read
        )
        try:
            async with self.session.get(
                self.base_url + "/view", params=file.params(), timeout=timeout
            ) as resp:
                if resp.status == 404:
                    where = f"{file.subfolder}/{file.filename}" if file.subfolder else file.filename
                    raise NotFound(f"ComfyUI has no {file.type} file {where}")
                if resp.status in (400, 403):
                    raise InvalidInput(f"ComfyUI refused the file name {file.filename!r}")
                if resp.status != 200:
                    raise self._failed(resp.status, "GET /view", b"")
                async for block in resp.content.iter_chunked(chunk):
                    yield block
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(self.base_url, exc) from None

    async def upload(
        self, name: str, data: bytes, *, kind: str = "input", subfolder: str = "", overwrite: bool = True
    ) -> OutputFile:
        """`POST /upload/image` (multipart): store `data` as `name` in ComfyUI's `kind` folder
        (input, temp or output). The answer names the stored file, which ComfyUI renames
        (`pic (1).png`) when the name is taken by other bytes and `overwrite` is off."""
        form = aiohttp.FormData()
        content_type = mimetypes.guess_type(name)[0] or "image/png"
        form.add_field("image", data, filename=name, content_type=content_type)
        form.add_field("overwrite", "true" if overwrite else "false")
        form.add_field("type", kind)
        if subfolder:
            form.add_field("subfolder", subfolder)
        try:
            async with self.session.post(
                self.base_url + "/upload/image", data=form, timeout=self._timeout(self.timeouts.request)
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(self.base_url, exc) from None
        if status == 400:
            raise InvalidInput(
                f"ComfyUI refused the upload of {name!r}",
                hint="use a plain file name (no folders, no '..') and send the file's bytes",
            )
        if status == 413:
            raise PayloadTooLarge(f"{name!r} is larger than ComfyUI accepts ({len(data)} bytes)")
        if status != 200:
            raise self._failed(status, "POST /upload/image", raw)
        try:
            body = as_object(json.loads(raw))
        except ValueError:
            body = {}
        where = {"subfolder": body.get("subfolder"), "type": body.get("type") or kind}
        stored = OutputFile.parse({"filename": body.get("name"), **where})
        if stored is None:
            raise ComfyUIError("ComfyUI's answer to POST /upload/image names no file")
        return stored

    # ---- events ------------------------------------------------------------------------------
    def ws_url(self, client_id: str | None = None) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/ws?clientId={client_id or self.client_id}"

    async def connect(self, client_id: str | None = None) -> aiohttp.ClientWebSocketResponse:
        """ComfyUI's WebSocket as `client_id`: open it before submitting, to miss no frame."""
        try:
            return await self.session.ws_connect(
                self.ws_url(client_id), heartbeat=self.timeouts.heartbeat, max_msg_size=0
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise unreachable(self.base_url, exc) from None
