"""Queue a workflow in ComfyUI: convert the UI format, apply parameters, `POST /prompt`.

Used by `POST /api/workflows/{name}/run` and `POST /api/generate`. The prompt is sent with our
client id, so ComfyUI's execution frames reach the relay and appear on `/ws` as `generation`
events. ComfyUI's validation errors come back as 400 `comfyui_rejected` with its `error` and
`node_errors` (tracebacks removed: they contain server paths).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from typing import Any

import aiohttp
from fastapi import Request
from pydantic import BaseModel, Field

from ...errors import AppError, ServiceUnavailable
from ...services import Services
from ..deps import comfyui_base_url, require_comfyui


class RunRequest(BaseModel):
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Inputs to set before queueing: {'<node id or title>.<input>': value}",
        examples=[{"KSampler.seed": 42}],
    )


class GenerateRequest(RunRequest):
    workflow: dict[str, Any] = Field(description="UI format or API prompt")


class ComfyUIRejected(AppError):
    status = 400
    code = "comfyui_rejected"


class BadGateway(AppError):
    status = 502
    code = "bad_gateway"


def client_id(request: Request, svc: Services) -> str:
    cid = getattr(svc.comfyui, "client_id", None) if svc.comfyui is not None else None
    if isinstance(cid, str) and cid:
        return cid
    state = request.app.state
    if getattr(state, "client_id", None) is None:
        state.client_id = uuid.uuid4().hex
    return str(state.client_id)


_HIDDEN = frozenset({"traceback", "exception_message"})


def _strip_tracebacks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_tracebacks(v) for k, v in value.items() if k not in _HIDDEN}
    if isinstance(value, list):
        return [_strip_tracebacks(v) for v in value]
    return value


async def _object_info(request: Request, svc: Services) -> dict[str, Any]:
    from ...workflows.object_info import ObjectInfoStore

    store = getattr(request.app.state, "object_info", None)
    if store is None:
        store = request.app.state.object_info = ObjectInfoStore.from_settings(svc.settings)
    result: dict[str, Any] = await store.get(session=request.app.state.proxy_session)
    return result


async def apply_params(
    request: Request, svc: Services, prompt: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    """Set `<node id or title>.<input>` values, type-checked against the node definitions."""
    if not values:
        return prompt
    from ...workflows.params import apply_values

    info = await _object_info(request, svc)
    result, _changes = apply_values(prompt, info, values)
    return result


async def to_prompt(request: Request, svc: Services, workflow: dict[str, Any]) -> dict[str, Any]:
    from ...workflows.convert import convert, is_api_format

    if is_api_format(workflow):
        inner = workflow.get("prompt")
        return dict(inner) if isinstance(inner, dict) else dict(workflow)
    info = await _object_info(request, svc)
    result: dict[str, Any] = await asyncio.to_thread(convert, workflow, info)
    return result


async def run_workflow(
    request: Request, svc: Services, workflow: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    require_comfyui(svc)
    prompt = await apply_params(request, svc, await to_prompt(request, svc, workflow), values)
    cid = client_id(request, svc)
    session: aiohttp.ClientSession = request.app.state.proxy_session
    body: dict[str, Any] = {"prompt": prompt, "client_id": cid}
    if "nodes" in workflow:
        body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
    try:
        async with session.post(
            f"{comfyui_base_url(svc)}/prompt",
            json=body,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        raise ServiceUnavailable(
            "ComfyUI is not answering", hint="it may be restarting; try again shortly", state="unreachable"
        ) from None
    try:
        data: Any = json.loads(raw) if raw else {}
    except ValueError:
        data = None
    if status == 200 and isinstance(data, dict) and "prompt_id" in data:
        return {
            "prompt_id": data["prompt_id"],
            "number": data.get("number"),
            "node_errors": _strip_tracebacks(data.get("node_errors") or {}),
            "client_id": cid,
        }
    if status == 400 and isinstance(data, dict):
        err: dict[str, Any] = data["error"] if isinstance(data.get("error"), dict) else {}
        message = str(err.get("message") or "ComfyUI refused the workflow")
        details = err.get("details")
        raise ComfyUIRejected(
            f"ComfyUI refused the workflow: {message}" + (f" ({details})" if details else ""),
            hint="check the inputs named in details.node_errors",
            error=_strip_tracebacks(err),
            node_errors=_strip_tracebacks(data.get("node_errors") or {}),
        )
    raise BadGateway(f"ComfyUI answered {status} to POST /prompt", hint="see the ComfyUI log on the Pro page")


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
