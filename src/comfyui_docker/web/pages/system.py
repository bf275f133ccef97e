"""A snapshot of the machine for the Home gauges (the live values then come over /ws)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psutil

from ...gpu import nvml_for
from ...services import Services
from ...settings import Settings


@lru_cache(maxsize=1)
def _pynvml() -> Any | None:
    """pynvml, initialised once; None without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml


def gpus(settings: Settings) -> list[dict[str, Any]]:
    """Each GPU's name, memory and load (COMFYUI_TEST_GPUS: the declared ones)."""
    nvml = nvml_for(settings) if settings.comfyui_test_gpus else _pynvml()
    if nvml is None:
        return []
    out = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            name = nvml.nvmlDeviceGetName(h)
            out.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_used": int(mem.used),
                    "memory_total": int(mem.total),
                    "utilization": int(nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                }
            )
    except Exception:
        return []
    return out


def snapshot(svc: Services) -> dict[str, Any]:
    mem = psutil.virtual_memory()
    try:
        disk = svc.workspace.disk_usage()
        disk_info: dict[str, Any] | None = {"total": disk.total, "used": disk.used, "free": disk.free}
    except OSError:
        disk_info = None
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory": {"total": mem.total, "used": mem.total - mem.available, "percent": mem.percent},
        "disk": disk_info,
        "gpus": gpus(svc.settings),
    }


def percent(used: float, total: float) -> int:
    return round(100 * used / total) if total else 0
