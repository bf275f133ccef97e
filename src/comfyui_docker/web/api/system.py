"""System facts: CPU, memory, the volume's disk, GPUs (NVML), versions, RunPod URLs.

`SystemSampler` is created once per app; `publish_loop` is the single background task that puts a
`SystemStatus` event on the bus every few seconds (browsers get it over `/ws`; no connection polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import sys
import time
from importlib import metadata
from typing import Any

import psutil
from fastapi import APIRouter, Request

from ... import __version__
from ...events import SystemStatus
from ...gpu import missing_nvml
from ...services import Services
from ..deps import ServicesDep, comfyui_status
from ..errors import COMMON_ERRORS, error_responses

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 3.0
router = APIRouter(prefix="/api/system", tags=["system"], responses=error_responses(*COMMON_ERRORS))


class SystemSampler:
    """Reads the machine; NVML is initialised once, and its absence is reported, not raised."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self.gpu_error: str | None = None
        self._nvml_tried = False
        psutil.cpu_percent(interval=None)  # prime the counter: later calls measure since this one

    def _init_nvml(self) -> None:
        self._nvml_tried = True
        try:
            nvml: Any = missing_nvml()  # no driver: fail as pynvml would, without importing it
            if nvml is None:
                import pynvml

                nvml = pynvml

            nvml.nvmlInit()
            self._nvml = nvml
        except Exception as exc:
            self.gpu_error = f"no GPU: {exc}" if str(exc) else "no GPU: NVML is not available"

    def gpus(self) -> list[dict[str, Any]]:
        if not self._nvml_tried:
            self._init_nvml()
        nv = self._nvml
        if nv is None:
            return []
        out: list[dict[str, Any]] = []
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                gpu: dict[str, Any] = {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total": int(mem.total),
                    "memory_used": int(mem.used),
                    "memory_free": int(mem.free),
                }
                with contextlib.suppress(Exception):
                    gpu["utilization"] = int(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                with contextlib.suppress(Exception):
                    gpu["temperature"] = int(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
                out.append(gpu)
            if not out:
                self.gpu_error = "no GPU: NVML sees no device"
        except Exception as exc:
            self.gpu_error = f"GPU read failed: {exc}"
            return []
        return out

    def sample(self, svc: Services) -> dict[str, Any]:
        mem = psutil.virtual_memory()
        try:
            d = svc.workspace.disk_usage()
            disk: dict[str, Any] = {
                "path": str(svc.workspace.root),
                "total": d.total,
                "used": d.used,
                "free": d.free,
                "percent": round(d.percent, 1),
            }
        except OSError as exc:
            disk = {"path": str(svc.workspace.root), "error": exc.strerror or str(exc)}
        gpus = self.gpus()
        return {
            "cpu": {"percent": psutil.cpu_percent(interval=None), "count": psutil.cpu_count() or 0},
            "memory": {
                "total": mem.total,
                "available": mem.available,
                "used": mem.total - mem.available,
                "percent": mem.percent,
            },
            "disk": disk,
            "gpus": gpus,
            "gpu_error": None if gpus else self.gpu_error or "no GPU",
        }


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
        "comfyui": {**comfyui_status(svc), "port": s.comfyui_port},
    }


@router.get("", summary="CPU, memory, disk, GPUs, versions, services and RunPod URLs")
async def system(request: Request, svc: ServicesDep) -> dict[str, Any]:
    sampler: SystemSampler = request.app.state.sampler
    data = await asyncio.to_thread(sampler.sample, svc)
    data["versions"] = versions(svc)
    data["runpod"] = runpod_info(svc)
    data["services"] = services_view(svc)
    data["uptime"] = round(time.time() - svc.started_at, 1)
    data["python_executable"] = sys.executable
    return data


async def publish_loop(svc: Services, sampler: SystemSampler, interval: float = PUBLISH_INTERVAL) -> None:
    """Publish a SystemStatus every `interval` seconds while anyone listens to the bus."""
    while True:
        if svc.bus.subscriber_count:
            try:
                data = await asyncio.to_thread(sampler.sample, svc)
                svc.bus.publish(
                    SystemStatus(
                        cpu_percent=data["cpu"]["percent"],
                        memory=data["memory"],
                        disk=data["disk"],
                        gpus=data["gpus"],
                    )
                )
            except Exception:
                log.exception("system sample failed")
        await asyncio.sleep(interval)
