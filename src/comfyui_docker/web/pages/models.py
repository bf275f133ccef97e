"""Models: the preset catalog as a grid (install with variant, live progress, cancel, uninstall),
installed files per folder with delete, and the volume's disk usage with an early warning.

The grid and the file list are filled by the page's script from `/api/presets`, `/api/presets/tasks`
and `/api/models`, then kept live by `task_state` / `download_progress` events on `/ws`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...workspace import LOW_SPACE_BYTES
from .rendering import render, services

router = APIRouter()
LOW_SPACE_PERCENT = 90.0


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request) -> HTMLResponse:
    svc = services(request)
    try:
        disk = svc.workspace.disk_usage()
    except OSError:
        disk = None
    low = disk is not None and (disk.free < LOW_SPACE_BYTES or disk.percent >= LOW_SPACE_PERCENT)
    return render(
        request,
        "models.html",
        {
            "title": "Models",
            "disk": disk,
            "low_space": low,
            "low_space_bytes": LOW_SPACE_BYTES,
            "manager_enabled": svc.settings.enable_preset_manager,
        },
    )
