"""A typed async client for the parts of ComfyUI's API the runtime uses (COMFYUI.md §2).

One shared `aiohttp.ClientSession` (the runtime's `services.http`); every call has a timeout.
ComfyUI answers many errors with an empty body and no Content-Type, so nothing here assumes JSON
on a non-200. A 400 from `POST /prompt` becomes `PromptRejected` carrying ComfyUI's own
`error`/`node_errors` (tracebacks stripped of server paths before they reach a user).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import AppError, InvalidInput, NotFound, ServiceUnavailable

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=3)
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2, connect=1)


class ComfyUIError(AppError):
    status = 502
    code = "comfyui_error"


class PromptRejected(InvalidInput):
    """ComfyUI refused the graph (HTTP 400): `.error` and `.node_errors` as ComfyUI sent them."""

    code = "prompt_rejected"

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        message = str(error.get("message") or "ComfyUI rejected the prompt")
        details = str(error.get("details") or "")
        super().__init__(
            f"{message}: {details}" if details else message,
            hint="fix the inputs named in node_errors (missing models show as value_not_in_list)",
            error=error,
            node_errors=node_errors,
        )
        self.error = error
        self.node_errors = node_errors


@dataclass(frozen=True)
class PromptResult:
    prompt_id: str
    number: float
    node_errors: dict[str, Any] = field(default_factory=dict)


class ComfyUIClient:
    """`ComfyUIClient(session, "http://127.0.0.1:8188")`; `client_id` names our WebSocket."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, client_id: str | None = None) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.version: str | None = None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"

    # ---- plumbing ----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        data: Any = None,
    ) -> tuple[int, bytes]:
        try:
            async with self.session.request(
                method, self.base_url + path, json=json_body, params=params, data=data, timeout=timeout
            ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ServiceUnavailable(
                f"ComfyUI does not answer at {self.base_url} ({type(exc).__name__})",
                hint="it may still be starting; its state is on the dashboard",
                state="unreachable",
            ) from None

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        status, body = await self._request(method, path, **kw)
        if status == 404:
            raise NotFound(f"ComfyUI has no {path}")
        if status != 200:
            raise _failed(status, f"{method} {path}", body)
        try:
            return json.loads(body)
        except ValueError:
            raise ComfyUIError(f"ComfyUI sent something that is not JSON for {path}") from None

    async def _post_ok(self, path: str, body: Any) -> None:
        status, raw = await self._request("POST", path, json_body=body)
        if status != 200:
            raise _failed(status, f"POST {path}", raw)

    # ---- server ------------------------------------------------------------------------------
    async def system_stats(self, *, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> dict[str, Any]:
        stats: dict[str, Any] = await self._json("GET", "/system_stats", timeout=timeout)
        self.version = stats.get("system", {}).get("comfyui_version")
        return stats

    async def is_ours(self, output_dir: Path | str) -> bool:
        """Readiness (COMFYUI.md §7): /system_stats is 200 and its argv holds our --output-directory."""
        try:
            stats = await self.system_stats(timeout=PROBE_TIMEOUT)
        except (AppError, aiohttp.ClientError):
            return False
        argv = stats.get("system", {}).get("argv", [])
        return isinstance(argv, list) and str(output_dir) in argv

    # ---- prompts and queue -------------------------------------------------------------------
    async def queue_prompt(
        self,
        prompt: Mapping[str, Any],
        *,
        prompt_id: str | None = None,
        front: bool = False,
        extra_data: Mapping[str, Any] | None = None,
        client_id: str | None = None,
    ) -> PromptResult:
        body: dict[str, Any] = {"prompt": prompt, "client_id": client_id or self.client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = dict(extra_data)
        status, raw = await self._request("POST", "/prompt", json_body=body)
        if status == 400:
            try:
                data = json.loads(raw)
            except ValueError:
                data = {}
            raise PromptRejected(scrub(data.get("error") or {}), scrub(data.get("node_errors") or {}))
        if status != 200:
            raise _failed(status, "POST /prompt", raw)
        data = json.loads(raw)
        return PromptResult(str(data["prompt_id"]), data.get("number", 0), data.get("node_errors") or {})

    async def queue(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/queue")
        return result

    async def queue_remaining(self) -> int:
        data = await self._json("GET", "/prompt")
        return int(data.get("exec_info", {}).get("queue_remaining", 0))

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        await self._post_ok("/queue", {"delete": prompt_ids})

    async def clear_queue(self) -> None:
        await self._post_ok("/queue", {"clear": True})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        await self._post_ok("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    async def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        await self._post_ok("/free", {"unload_models": unload_models, "free_memory": free_memory})

    async def history(self, prompt_id: str | None = None, *, max_items: int | None = None) -> dict[str, Any]:
        path = f"/history/{prompt_id}" if prompt_id else "/history"
        params = {"max_items": str(max_items)} if max_items is not None and not prompt_id else None
        result: dict[str, Any] = await self._json("GET", path, params=params)
        return result

    async def delete_history(self, prompt_ids: list[str]) -> None:
        await self._post_ok("/history", {"delete": prompt_ids})

    # ---- files -------------------------------------------------------------------------------
    async def view(
        self, filename: str, *, subfolder: str = "", kind: str = "output", chunk: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        """Stream a file from /view (never loaded whole). NotFound on 404, InvalidInput on 400."""
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=60)
        try:
            async with self.session.get(self.base_url + "/view", params=params, timeout=timeout) as resp:
                if resp.status == 404:
                    where = f"{subfolder}/{filename}" if subfolder else filename
                    raise NotFound(f"ComfyUI has no {kind} file {where}")
                if resp.status in (400, 403):
                    raise InvalidInput(f"ComfyUI refused the file name {filename!r}")
                if resp.status != 200:
                    raise ComfyUIError(f"ComfyUI answered {resp.status} to /view")
                async for block in resp.content.iter_chunked(chunk):
                    yield block
        except aiohttp.ClientConnectionError:
            raise ServiceUnavailable("ComfyUI does not answer", state="unreachable") from None

    async def upload_image(
        self,
        data: bytes,
        filename: str,
        *,
        subfolder: str = "",
        kind: str = "input",
        overwrite: bool = False,
        content_type: str = "image/png",
    ) -> dict[str, str]:
        """POST /upload/image; returns ComfyUI's `{name, subfolder, type}` (name may get " (1)")."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type=content_type)
        form.add_field("type", kind)
        form.add_field("subfolder", subfolder)
        if overwrite:
            form.add_field("overwrite", "true")
        status, raw = await self._request("POST", "/upload/image", data=form)
        if status == 400:
            raise InvalidInput(f"ComfyUI refused the upload {filename!r} (bad name or folder)")
        if status == 413:
            raise InvalidInput(f"{filename!r} is larger than ComfyUI's upload limit")
        if status != 200:
            raise ComfyUIError(f"ComfyUI answered {status} to the upload")
        result: dict[str, str] = json.loads(raw)
        return result

    # ---- node definitions and models -------------------------------------------------------
    async def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        path = f"/object_info/{node_class}" if node_class else "/object_info"
        timeout = aiohttp.ClientTimeout(total=120, connect=3)
        result: dict[str, Any] = await self._json("GET", path, timeout=timeout)
        return result

    async def model_types(self) -> list[str]:
        result: list[str] = await self._json("GET", "/models")
        return result

    async def models(self, folder: str) -> list[str]:
        """Files of a model type; NotFound for unknown types and for `clip`/`unet` (ComfyUI's 404)."""
        result: list[str] = await self._json("GET", f"/models/{folder}")
        return result


def _failed(status: int, what: str, body: bytes) -> ComfyUIError:
    return ComfyUIError(f"ComfyUI answered {status} to {what}", body=body[:500].decode("utf-8", "replace"))


def scrub(value: Any) -> Any:
    """Drop server paths from tracebacks (they show ComfyUI's install and Python layout)."""
    if isinstance(value, dict):
        return {k: ([] if k == "traceback" else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
