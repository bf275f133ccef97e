"""ComfyUI as a service: its state, restart, the queue (through the gateway), and the page nginx
shows on ComfyUI's port while it is not ready. Queueing a workflow is in run.py.

    GET  /api/service/comfyui              {state, detail, ready, instances: [...]} (one per GPU)
    POST /api/service/comfyui/restart      ask the supervisor to restart it (202); with several
                                           ComfyUIs, every one or `?instance=comfyui-n`
    GET  /api/queue                        {running: [...], pending: [...]} (prompt ids, numbers)
    POST /api/queue/interrupt              stop the running prompt
    DELETE /api/queue/{prompt_id}          drop a pending prompt
    GET  /comfyui-unavailable              HTML: state + live log tail; `?format=json` for its poll
"""

from __future__ import annotations

import asyncio
import html
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ...errors import Conflict, NotFound, ServiceUnavailable
from ...instance_views import instance_views
from ...services import Services
from ..auth import templates
from ..deps import DashboardDep, GatewayDep, ServicesDep, comfyui_status, gateway
from ..errors import COMMON_ERRORS, error_responses
from .logs import redact, tail_lines

router = APIRouter(tags=["comfyui"])
PROMPT_ID = r"^[0-9a-fA-F-]{1,64}$"
_ERR = error_responses(*COMMON_ERRORS)
_ERR_UP = {**_ERR, **error_responses(502, 503)}
_BACKGROUND: set[asyncio.Future[Any]] = set()


@router.get("/api/service/comfyui", summary="ComfyUI's state as the supervisor sees it", responses=_ERR)
async def state(svc: ServicesDep) -> dict[str, Any]:
    return {**comfyui_status(svc).as_dict(), "instances": [v.as_dict() for v in instance_views(svc)]}


@router.post(
    "/api/service/comfyui/restart",
    status_code=202,
    summary="Restart ComfyUI (through the supervisor): every instance, or the one named",
    responses={**_ERR, **error_responses(404, 409, 503)},
)
async def restart(
    svc: ServicesDep,
    instance: Annotated[
        str | None, Query(max_length=32, description="one ComfyUI (comfyui-n: GPU n's); default: every one")
    ] = None,
) -> dict[str, Any]:
    sup = svc.supervisor
    if sup is None:
        raise ServiceUnavailable(
            "ComfyUI is not supervised by this process",
            hint="start the runtime with comfyui-docker start",
            state=comfyui_status(svc).state,
        )
    names = svc.instance_names()
    if instance is not None and instance not in names:
        raise NotFound(f"no ComfyUI instance named {instance!r}", hint=f"one of: {', '.join(names)}")
    chosen = [instance] if instance is not None else names
    for name in chosen:
        try:
            sup.status(name)
        except KeyError:
            raise Conflict(f"{name} cannot be restarted now: it is not supervised") from None
    for name in chosen:  # the restart waits for the process to stop: the request does not wait for it
        task = asyncio.ensure_future(sup.restart(name))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    return {"status": "restarting", "restarting": chosen, **comfyui_status(svc).as_dict()}


@router.get(
    "/api/queue",
    summary="ComfyUI's queue (running and pending prompts)",
    responses=_ERR_UP,
)
async def queue(comfyui: GatewayDep) -> dict[str, Any]:
    return (await comfyui.queue()).to_dict()


@router.post(
    "/api/queue/interrupt", summary="Stop the running prompt", responses={**_ERR, **error_responses(502, 503)}
)
async def interrupt(comfyui: GatewayDep) -> dict[str, str]:
    await comfyui.interrupt()
    return {"status": "interrupted"}


@router.delete(
    "/api/queue/{prompt_id}",
    summary="Remove a pending prompt from the queue",
    responses=_ERR_UP,
)
async def delete_pending(
    prompt_id: Annotated[str, Path(pattern=PROMPT_ID)], svc: ServicesDep
) -> dict[str, str]:
    # the gateway after the id is checked: DELETE /api/queue/interrupt is a 405 (a POST-only
    # path), not ComfyUI's 503 (errors.py turns the id's 422 into that 405)
    await gateway(svc).delete(prompt_id)
    return {"status": "deleted", "prompt_id": prompt_id}


def _log_tail(svc: Services, token: str | None, name: str, n: int = 80) -> str:
    lines = tail_lines(svc.workspace.logs / f"{name}.log", n)
    return redact("\n".join(lines), svc, token)


@router.get(
    "/comfyui-unavailable",
    summary="Page shown on ComfyUI's port while it is not ready",
    response_class=HTMLResponse,
    responses={503: {"description": "ComfyUI is not ready (the page, or JSON with ?format=json)"}, **_ERR},
)
async def unavailable(
    request: Request,
    dashboard: DashboardDep,
    format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
    instance: Annotated[str | None, Query(pattern=r"^comfyui(-\d{1,2})?$")] = None,
) -> Response:
    svc = dashboard.services
    names = svc.instance_names()
    name = instance if instance in names else names[0]
    if instance in names and len(names) > 1:  # /gpu/n/ on ComfyUI's port: that instance's state
        view = next(v for v in instance_views(svc) if v.name == name)
        st = {"state": view.state, "detail": view.detail, "ready": view.state == "running"}
        if st["ready"]:
            st["ready"] = svc.comfyui is not None and await svc.comfyui.answers(name)
    else:
        st = comfyui_status(svc).as_dict()
        if st["ready"]:
            st["ready"] = svc.comfyui is not None and await svc.comfyui.answers()
    tail = await asyncio.to_thread(_log_tail, svc, dashboard.auth.api_token(), name)
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
