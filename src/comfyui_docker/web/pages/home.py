"""Home: services and their states, each GPU's ComfyUI (COMFYUI_GPUS: state, queue, VRAM, its own
page), gauges, active tasks, recent outputs, start-up timings."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import outputs as gallery
from ...instance_views import instance_views
from . import state, system
from .rendering import render, services

router = APIRouter()


def _links(request: Request) -> dict[str, str]:
    """Where the user reaches each service from their browser."""
    s = services(request).settings
    if s.runpod_pod_id:
        return {
            "dashboard": f"https://{s.runpod_pod_id}-{s.dashboard_port}.proxy.runpod.net/",
            "comfyui": f"https://{s.runpod_pod_id}-{s.comfyui_port}.proxy.runpod.net/",
        }
    host = request.url.hostname or "localhost"
    out = {"dashboard": str(request.base_url)}
    if s.enable_nginx:
        out["comfyui"] = f"{request.url.scheme}://{host}:{s.comfyui_port}/"
    elif host in {"127.0.0.1", "localhost", "::1"}:
        out["comfyui"] = s.comfyui_url + "/"
    return out


def _instance_link(request: Request, gpu: int | None, port: int) -> str:
    """Where the user opens one instance's own ComfyUI page: /gpu/<n>/ on ComfyUI's port (nginx)."""
    s = services(request).settings
    if gpu is None:
        return ""
    if s.runpod_pod_id:
        return f"https://{s.runpod_pod_id}-{s.comfyui_port}.proxy.runpod.net/gpu/{gpu}/"
    host = request.url.hostname or "localhost"
    if s.enable_nginx:
        return f"{request.url.scheme}://{host}:{s.comfyui_port}/gpu/{gpu}/"
    if host in {"127.0.0.1", "localhost", "::1"}:
        return f"http://127.0.0.1:{port}/"
    return ""


def _instances(request: Request, gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ComfyUI with its GPU, state (and its badge's tone), queue, VRAM and link."""
    out = []
    for view in instance_views(services(request), gpus):
        shown = state.ServiceView(view.name, view.state.replace("_", " "), view.detail)
        link = _instance_link(request, view.gpu, view.port)
        out.append({**view.as_dict(), "state": shown.state, "tone": shown.tone, "link": link})
    return out


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    svc = services(request)
    recent, total_outputs = gallery.list_outputs(svc.workspace.output, limit=8)
    tasks = state.tasks(svc)
    machine = system.snapshot(svc)
    return render(
        request,
        "home.html",
        {
            "title": "Home",
            "links": _links(request),
            "services_list": [
                state.ServiceView("dashboard", "running", f"up {int(time.time() - svc.started_at)} s"),
                state.comfyui_state(svc),
                state.nginx_state(svc),
            ],
            "sys": machine,
            "instances": _instances(request, machine["gpus"]) if len(svc.instance_names()) > 1 else [],
            "pct": system.percent,
            "tasks": [t for t in tasks if str(t.get("state", "")) in state.ACTIVE_TASK_STATES],
            "recent": recent,
            "total_outputs": total_outputs,
            "timings": svc.timings,
            "timings_total": sum(t.seconds for t in svc.timings),
            "runpod": svc.settings.runpod_pod_id,
        },
    )
