"""Readiness: what `GET /health/ready` and `comfyui-docker health --json` report.

    ready     ComfyUI answers as ours (or there is no ComfyUI to wait for: not_installed)
    healthy   nothing is broken for good: ComfyUI is not fatal/blocked (what Docker's HEALTHCHECK uses)

With one ComfyUI per GPU (COMFYUI_GPUS), `ready` while any of them runs (`status`: `degraded`
while some do not), `healthy` while any is not fatal or blocked (one broken GPU leaves the others
working); `instances` lists each one (state,
GPU, port, queue, VRAM).

Detail: ComfyUI's supervised state (with its last log lines when it failed), nginx, the GPU
preflight, downloads, disk space left on the volume, the start-up phase timings.
"""

from __future__ import annotations

import time
from typing import Any

from .instance_views import instance_views, overall
from .services import Services
from .workspace import LOW_SPACE_BYTES

BROKEN = frozenset({"fatal", "blocked"})
READY = frozenset({"running", "not_installed"})
TAIL_LINES = 20


def _service(services: Services, name: str) -> dict[str, Any] | None:
    sup = services.supervisor
    if sup is None:
        return None
    try:
        out = sup.status(name).as_dict()
    except KeyError:  # not supervised here (no nginx without ENABLE_NGINX)
        return None
    if out["state"] in ("fatal", "backoff", "blocked", "starting"):
        out["log_tail"] = sup.log_tail(name, TAIL_LINES)
    return out


def _downloads(services: Services) -> dict[str, Any]:
    presets = services.presets
    if presets is None:
        return {"state": "unavailable"}
    counts: dict[str, int] = {}
    try:
        for task in presets.tasks():
            counts[task.state] = counts.get(task.state, 0) + 1
    except Exception as exc:  # a broken download service must not break the health check
        return {"state": "error", "detail": str(exc)}
    active = sum(n for s, n in counts.items() if s in ("queued", "downloading", "verifying"))
    return {"state": "active" if active else "idle", "tasks": counts}


def _disk(services: Services) -> dict[str, Any]:
    try:
        usage = services.workspace.disk_usage()
    except OSError as exc:
        return {"state": "error", "detail": str(exc)}
    low = usage.free < LOW_SPACE_BYTES
    return {
        "state": "low" if low else "ok",
        "free": usage.free,
        "total": usage.total,
        "percent_used": round(usage.percent, 1),
    }


def _instances(services: Services) -> list[dict[str, Any]]:
    """Each ComfyUI (one per GPU with COMFYUI_GPUS), failing ones with their last log lines."""
    out = []
    for view in instance_views(services):
        item = view.as_dict()
        if services.supervisor is not None and view.state in ("fatal", "backoff", "blocked", "starting"):
            try:
                item["log_tail"] = services.supervisor.log_tail(view.name, TAIL_LINES)
            except KeyError:
                pass
        out.append(item)
    return out


def readiness(services: Services) -> dict[str, Any]:
    """The readiness report (plain data, JSON-ready)."""
    names = services.instance_names()
    comfy = _service(services, names[0])
    if comfy is None:
        installed = services.settings.comfyui_installed
        comfy = {"state": "not_started" if installed else "not_installed", "detail": ""}
    instances = _instances(services)
    state = str(comfy["state"])
    ready, healthy = state in READY, state not in BROKEN
    status = "ok" if ready else ("failed" if not healthy else "starting")
    if len(instances) > 1:  # ready while any runs; healthy while any is not broken for good
        state, detail = overall([view for view in instance_views(services)])
        comfy = {"state": state, "detail": detail}
        states = [str(i["state"]) for i in instances]
        ready = any(s in READY for s in states)
        # One GPU's ComfyUI broken for good leaves the others working: the container stays healthy
        # (Docker's HEALTHCHECK) and says `degraded`; it is unhealthy when every one is broken.
        healthy = not all(s in BROKEN for s in states)
        all_ready = all(s in READY for s in states)
        status = "ok" if all_ready else ("degraded" if ready else ("failed" if not healthy else "starting"))
    out: dict[str, Any] = {
        "ready": ready,
        "healthy": healthy,
        "status": status,
        "comfyui": comfy,
        "instances": instances,
        "downloads": _downloads(services),
        "disk": _disk(services),
        "uptime": round(time.time() - services.started_at, 1),
        "timings": [
            {"name": t.name, "seconds": t.seconds, "ok": t.ok, "detail": t.detail} for t in services.timings
        ],
    }
    nginx = _service(services, "nginx")
    if nginx is not None:
        out["nginx"] = nginx
        out["healthy"] = out["healthy"] and nginx["state"] not in BROKEN
        out["ready"] = out["ready"] and nginx["state"] == "running"
    report = services.gpu
    if report is not None:
        out["gpu"] = {"state": report.verdict, **report.as_dict()}
    return out
