"""The machine's readings for the dashboard: CPU, memory, the volume's disk, GPUs (NVML).

`SystemSampler` is created once per app; `publish_loop` is the single background task that puts a
`SystemStatus` event on the bus every few seconds (browsers get it over `/ws`; no connection polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psutil

from ..events import SystemStatus
from ..gpu import missing_nvml, nvml_for
from ..services import Services
from ..settings import Settings

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 3.0


class SystemSampler:
    """Reads the machine; NVML is initialised once, and its absence is reported, not raised."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self.gpu_error: str | None = None
        self._nvml_tried = False
        psutil.cpu_percent(interval=None)  # prime the counter: later calls measure since this one

    def _init_nvml(self, settings: Settings | None = None) -> None:
        self._nvml_tried = True
        try:
            # no driver: fail as pynvml would, without importing it; COMFYUI_TEST_GPUS: the declared GPUs
            nvml: Any = missing_nvml() if settings is None else nvml_for(settings)
            if nvml is None:
                import pynvml

                nvml = pynvml

            nvml.nvmlInit()
            self._nvml = nvml
        except Exception as exc:
            self.gpu_error = f"no GPU: {exc}" if str(exc) else "no GPU: NVML is not available"

    def gpus(self, settings: Settings | None = None) -> list[dict[str, Any]]:
        if not self._nvml_tried:
            self._init_nvml(settings)
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
        gpus = self.gpus(svc.settings)
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
