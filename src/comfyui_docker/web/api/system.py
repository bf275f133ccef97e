"""System facts: CPU, memory, the volume's disk, GPUs (NVML), versions, RunPod URLs.

The machine's readings come from the app's one `SystemSampler` (web/sampler.py).
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from importlib import metadata
from typing import Any

from fastapi import APIRouter

from ... import __version__
from ...services import Services
from ..deps import DashboardDep, comfyui_status
from ..errors import COMMON_ERRORS, error_responses

router = APIRouter(prefix="/api/system", tags=["system"], responses=error_responses(*COMMON_ERRORS))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(svc: Services) -> dict[str, Any]:
    out: dict[str, Any] = {
        "comfyui_docker": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    for dist in ("fastapi", "uvicorn", "aiohttp"):
        out[dist] = _version(dist)
    out["comfyui"] = svc.comfyui.version if svc.comfyui is not None else None
    return out


def runpod_info(svc: Services) -> dict[str, Any] | None:
    pod = svc.settings.runpod_pod_id
    if not pod:
        return None
    s = svc.settings

    def url(port: int) -> str:
        return f"https://{pod}-{port}.proxy.runpod.net"

    return {
        "pod_id": pod,
        "urls": {"dashboard": url(s.dashboard_port), "comfyui": url(s.comfyui_port)},
        "ssh": "TCP port 22 (see the pod's Connect menu)" if s.public_key else None,
    }


def services_view(svc: Services) -> dict[str, Any]:
    s = svc.settings
    return {
        "dashboard": {"state": "running", "port": s.dashboard_port},
        "comfyui": {**comfyui_status(svc).as_dict(), "port": s.comfyui_port},
    }


@router.get("", summary="CPU, memory, disk, GPUs, versions, services and RunPod URLs")
async def system(dashboard: DashboardDep) -> dict[str, Any]:
    svc = dashboard.services
    data = await asyncio.to_thread(dashboard.sampler.sample, svc)
    data["versions"] = versions(svc)
    data["runpod"] = runpod_info(svc)
    data["services"] = services_view(svc)
    data["uptime"] = round(time.time() - svc.started_at, 1)
    data["python_executable"] = sys.executable
    return data
