"""A snapshot of the machine for the Home gauges (the live values then come over /ws)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psutil

from ...services import Services


@lru_cache(maxsize=1)
def _nvml_ok() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    return True


def gpus() -> list[dict[str, Any]]:
    if not _nvml_ok():
        return []
    import pynvml

    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            out.append(
                {
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_used": int(mem.used),
                    "memory_total": int(mem.total),
                    "utilization": int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
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
        "gpus": gpus(),
    }


def percent(used: float, total: float) -> int:
    return round(100 * used / total) if total else 0
