"""ComfyUI as a service: its state, restart, the queue, running a workflow, and the page nginx
shows on ComfyUI's port while it is not ready.

    GET  /api/service/comfyui              {state, detail, ready}
    POST /api/service/comfyui/restart      ask the supervisor to restart it (202)
    GET  /api/queue                        {running: [...], pending: [...]} (prompt ids, numbers)
    POST /api/queue/interrupt              stop the running prompt
    DELETE /api/queue/{prompt_id}          drop a pending prompt
    POST /api/generate                     {workflow, set?} -> {prompt_id, ...}
    GET  /comfyui-unavailable              HTML: state + live log tail; `?format=json` for its poll
"""

from __future__ import annotations

import asyncio
import html
import inspect
import json
from typing import Annotated, Any

import aiohttp
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ...errors import Conflict, ServiceUnavailable
from ...services import Services
from ..auth import templates
from ..deps import ServicesDep, comfyui_base_url, comfyui_status, require_comfyui
from ..errors import COMMON_ERRORS, error_responses
from .logs import redact, tail_lines
from .run import BadGateway, GenerateRequest, run_workflow

router = APIRouter(tags=["comfyui"])
PROMPT_ID = r"^[0-9a-fA-F-]{1,64}$"
_ERR = error_responses(*COMMON_ERRORS)
_ERR_UP = {**_ERR, **error_responses(502, 503)}
_BACKGROUND: set[asyncio.Future[Any]] = set()


@router.get("/api/service/comfyui", summary="ComfyUI's state as the supervisor sees it", responses=_ERR)
async def state(svc: ServicesDep) -> dict[str, Any]:
    return comfyui_status(svc)


@router.post(
    "/api/service/comfyui/restart",
    status_code=202,
    summary="Restart ComfyUI (through the supervisor)",
    responses={**_ERR, **error_responses(409, 503)},
)
async def restart(svc: ServicesDep) -> dict[str, Any]:
    sup = svc.supervisor
    if sup is None:
        raise ServiceUnavailable(
            "ComfyUI is not supervised by this process",
            hint="start the runtime with comfyui-docker start",
            state=comfyui_status(svc)["state"],
        )
    func = getattr(sup, "restart", None)
    if not callable(func):
        raise ServiceUnavailable("this supervisor cannot restart services", state="unknown")
    try:
        params = inspect.signature(func).parameters
        result = func("comfyui") if params else func()
    except (KeyError, LookupError) as exc:
        raise Conflict(f"ComfyUI cannot be restarted now: {exc}") from None
    if inspect.isawaitable(result):
        # restart may wait for the process to stop; don't hold the request on it
        task = asyncio.ensure_future(result)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    return {"status": "restarting", **comfyui_status(svc)}


async def _comfy_json(request: Request, svc: Services, method: str, path: str, body: Any = None) -> Any:
    require_comfyui(svc)
    session: aiohttp.ClientSession = request.app.state.proxy_session
    try:
        async with session.request(
            method, f"{comfyui_base_url(svc)}{path}", json=body, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise BadGateway(f"ComfyUI answered {resp.status} to {method} {path}")
    except (TimeoutError, aiohttp.ClientError):
        raise ServiceUnavailable("ComfyUI is not answering", state="unreachable") from None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadGateway(f"ComfyUI sent something that is not JSON for {path}") from None


def _entries(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items or []:
        if isinstance(item, list) and len(item) >= 2:
            extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
            out.append(
                {
                    "number": item[0],
                    "prompt_id": item[1],
                    "nodes": len(item[2]) if len(item) > 2 and isinstance(item[2], dict) else None,
                    "client_id": extra.get("client_id"),
                    "create_time": extra.get("create_time"),
                }
            )
    return out


@router.get(
    "/api/queue",
    summary="ComfyUI's queue (running and pending prompts)",
    responses=_ERR_UP,
)
async def queue(request: Request, svc: ServicesDep) -> dict[str, Any]:
    data = await _comfy_json(request, svc, "GET", "/queue") or {}
    return {"running": _entries(data.get("queue_running")), "pending": _entries(data.get("queue_pending"))}


@router.post(
    "/api/queue/interrupt", summary="Stop the running prompt", responses={**_ERR, **error_responses(502, 503)}
)
async def interrupt(request: Request, svc: ServicesDep) -> dict[str, str]:
    await _comfy_json(request, svc, "POST", "/interrupt", {})
    return {"status": "interrupted"}


@router.delete(
    "/api/queue/{prompt_id}",
    summary="Remove a pending prompt from the queue",
    responses=_ERR_UP,
)
async def delete_pending(
    prompt_id: Annotated[str, Path(pattern=PROMPT_ID)], request: Request, svc: ServicesDep
) -> dict[str, str]:
    await _comfy_json(request, svc, "POST", "/queue", {"delete": [prompt_id]})
    return {"status": "deleted", "prompt_id": prompt_id}


@router.post(
    "/api/generate",
    summary="Queue a workflow given in the body (UI format or API prompt)",
    responses={**_ERR, **error_responses(400, 502, 503)},
)
async def generate(body: GenerateRequest, request: Request, svc: ServicesDep) -> dict[str, Any]:
    from .workflows import check_workflow

    return await run_workflow(request, svc, check_workflow(body.workflow), body.set)


def _log_tail(svc: Services, token: str | None, n: int = 80) -> str:
    lines = tail_lines(svc.workspace.logs / "comfyui.log", n)
    return redact("\n".join(lines), svc, token)


async def _probe(request: Request, svc: Services) -> bool:
    """Whether ComfyUI answers now (the supervisor may say running a moment before it listens)."""
    session: aiohttp.ClientSession = request.app.state.proxy_session
    try:
        async with session.get(
            f"{comfyui_base_url(svc)}/system_stats", timeout=aiohttp.ClientTimeout(total=2)
        ) as resp:
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


@router.get(
    "/comfyui-unavailable",
    summary="Page shown on ComfyUI's port while it is not ready",
    response_class=HTMLResponse,
    responses={503: {"description": "ComfyUI is not ready (the page, or JSON with ?format=json)"}, **_ERR},
)
async def unavailable(
    request: Request,
    svc: ServicesDep,
    format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
) -> Response:
    st = comfyui_status(svc)
    if st["ready"]:
        st["ready"] = await _probe(request, svc)
    tail = await asyncio.to_thread(_log_tail, svc, request.app.state.auth.api_token())
    status = 200 if st["ready"] else 503
    headers = {"cache-control": "no-store", "retry-after": "2"}
    if format == "json":
        return JSONResponse({**st, "log_tail": tail}, status_code=status, headers=headers)
    return templates().TemplateResponse(
        request,
        "auth/comfyui_unavailable.html",
        {"state": st["state"], "detail": st["detail"], "log_tail": tail, "escape": html.escape},
        status_code=status,
        headers=headers,
    )
