"""Queue a workflow in ComfyUI: convert the UI format, apply parameters, `POST /prompt`.

Used by `POST /api/workflows/{name}/run` and `POST /api/generate`. The prompt is sent with our
client id, so ComfyUI's execution frames reach the relay and appear on `/ws` as `generation`
events. ComfyUI's validation errors come back as 400 `comfyui_rejected` with its `error` and
`node_errors` (tracebacks removed: they contain server paths).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import uuid
from typing import Any

import aiohttp
from fastapi import Request
from pydantic import BaseModel, Field

from ...errors import AppError, InvalidInput, ServiceUnavailable
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


def apply_params(prompt: dict[str, Any], values: dict[str, Any], workflow: dict[str, Any]) -> dict[str, Any]:
    """Set `<node id or title>.<input>` values on an API prompt."""
    if not values:
        return prompt
    try:
        params: Any = importlib.import_module("comfyui_docker.workflows.params")
    except ImportError:
        params = None
    func = getattr(params, "apply", None)
    if callable(func):
        result: dict[str, Any] = func(prompt, values, workflow=workflow)
        return result
    titles: dict[str, list[str]] = {}
    for node_id, node in prompt.items():
        title = (node.get("_meta") or {}).get("title") if isinstance(node, dict) else None
        if title:
            titles.setdefault(str(title), []).append(node_id)
    for key, value in values.items():
        target, sep, input_name = key.rpartition(".")
        if not sep or not target or not input_name:
            raise InvalidInput(f"'{key}' is not '<node id or title>.<input>'", hint="e.g. KSampler.seed")
        ids = [target] if target in prompt else titles.get(target, [])
        if not ids:
            ids = [i for i, n in prompt.items() if isinstance(n, dict) and n.get("class_type") == target]
        if len(ids) != 1:
            found = "no node" if not ids else f"{len(ids)} nodes"
            raise InvalidInput(f"'{target}' matches {found}", hint="use the node id or a unique title")
        inputs = prompt[ids[0]].setdefault("inputs", {})
        if input_name not in inputs:
            raise InvalidInput(f"node '{target}' has no input '{input_name}'")
        inputs[input_name] = value
    return prompt


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
    prompt = apply_params(await to_prompt(request, svc, workflow), values, workflow)
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
