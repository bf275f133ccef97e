"""Presets API with the design document's paths and shapes (§5.2), plus what a UI needs.

    GET    /api/presets?category=&type=      {presets: {id: preset}, total, problems}
    GET    /api/presets/tasks                {tasks: [task]}
    GET    /api/presets/status/{task_id}     task (404 unknown)
    POST   /api/presets/install              {preset_id, variant?} -> {task_id, status, message}
    POST   /api/presets/tasks/{id}/cancel    task
    GET    /api/presets/{preset_id}          preset with its installed state (404 unknown)
    DELETE /api/presets/{preset_id}          {status: "deleted", preset_id, removed: [paths]}

Thin: each route parses, calls `services.presets` (downloads.service.PresetService), answers.
Progress is pushed over `/ws` (`task_state`, `download_progress`), not polled.

The list is served from a prepared response (bytes, gzip copy, ETag; see `preset_list.py`) that is
rebuilt only when the install state can have changed: a task changing state (a `task_state`
event), this API installing, cancelling, uninstalling or deleting a model, or `LIST_TTL` seconds
(a file copied onto the volume by hand shows within two seconds). Most requests are answered by
`preset_list.PresetListFastPath` before the router; this route prepares what it serves.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..dashboard import dashboard_of
from ..deps import DashboardDep, PresetsDep, presets_of
from ..errors import COMMON_ERRORS, error_responses
from .preset_list import QUERY_LIMITS, PreparedResponse

ID_PATTERN = r"^[A-Z][A-Z0-9_]{0,127}$"
TASK_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
VARIANT_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


router = APIRouter(prefix="/api/presets", tags=["presets"], responses=error_responses(*COMMON_ERRORS, 503))

PresetId = Annotated[str, Path(pattern=ID_PATTERN, description="Preset id such as SDXL_BASE")]
TaskId = Annotated[str, Path(pattern=TASK_PATTERN)]


class PresetListResponse(BaseModel):
    presets: dict[str, dict[str, Any]]
    total: int
    problems: list[str] = Field(default_factory=list, description="Catalog entries that were skipped")


class PresetInstallRequest(BaseModel):
    preset_id: str = Field(pattern=ID_PATTERN, examples=["SD15_BASE"])
    variant: str | None = Field(default=None, pattern=VARIANT_PATTERN)


class PresetInstallResponse(BaseModel):
    task_id: str
    status: str
    message: str


class TaskList(BaseModel):
    tasks: list[dict[str, Any]]


class UninstallResponse(BaseModel):
    status: str
    preset_id: str
    removed: list[str]


@router.get("", response_model=PresetListResponse, summary="List the presets of the catalog")
async def list_presets(
    request: Request,
    category: Annotated[str | None, Query(max_length=QUERY_LIMITS["category"])] = None,
    type: Annotated[
        str | None, Query(max_length=QUERY_LIMITS["type"], description="video, image, audio or other")
    ] = None,
) -> Response:
    # the services are read without a dependency: this is the hottest route of the dashboard (a
    # prepared list is usually answered before the router, by preset_list.PresetListFastPath)
    dashboard = dashboard_of(request)
    presets = presets_of(dashboard.services)
    lists = dashboard.preset_lists
    key = (category, type)
    prepared = lists.get(key)
    if prepared is None:
        by_id = {str(p.get("id")): p for p in presets.list_presets(category, type)}
        problems = [str(p) for p in presets.catalog.problems]
        payload = {"presets": by_id, "total": len(by_id), "problems": problems}
        prepared = lists.put(key, json.dumps(payload, separators=(",", ":"), default=str).encode())
    return PreparedResponse(prepared)


@router.get("/tasks", response_model=TaskList, summary="Install tasks, newest last")
async def list_tasks(presets: PresetsDep) -> dict[str, Any]:
    return {"tasks": [t.to_dict() for t in presets.tasks()]}


@router.get("/status/{task_id}", summary="One install task's state", responses=error_responses(404))
async def task_status(task_id: TaskId, presets: PresetsDep) -> dict[str, Any]:
    return presets.task(task_id).to_dict()


@router.post(
    "/install",
    response_model=PresetInstallResponse,
    summary="Install a preset in the background",
    responses=error_responses(400, 404, 409, 507),
)
async def install(body: PresetInstallRequest, dashboard: DashboardDep, presets: PresetsDep) -> dict[str, Any]:
    task = await presets.install(body.preset_id, body.variant)
    dashboard.preset_lists.clear()
    variant = f" ({body.variant})" if body.variant else ""
    return {
        "task_id": task.id,
        "status": task.state,
        "message": f"Preset {body.preset_id}{variant} download started",
    }


@router.post(
    "/tasks/{task_id}/cancel",
    summary="Cancel an install task (its .part files stay resumable)",
    responses=error_responses(404, 409),
)
async def cancel(task_id: TaskId, dashboard: DashboardDep, presets: PresetsDep) -> dict[str, Any]:
    task = await presets.cancel(task_id)
    dashboard.preset_lists.clear()
    return task.to_dict()


@router.get("/{preset_id}", summary="One preset with its installed state", responses=error_responses(404))
async def get_preset(preset_id: PresetId, presets: PresetsDep) -> dict[str, Any]:
    return presets.describe(preset_id)


@router.delete(
    "/{preset_id}",
    response_model=UninstallResponse,
    summary="Uninstall a preset (files no other installed preset uses are deleted)",
    responses=error_responses(404, 409),
)
async def uninstall(preset_id: PresetId, dashboard: DashboardDep, presets: PresetsDep) -> dict[str, Any]:
    removed = await presets.uninstall(preset_id)
    dashboard.preset_lists.clear()
    return {"status": "deleted", "preset_id": preset_id, "removed": removed}
