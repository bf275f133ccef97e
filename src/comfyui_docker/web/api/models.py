"""Models API: the files on the volume, disk usage, deletion, and a workflow's missing models.

    GET    /api/models                     {folders: {folder: {files, count, bytes}}, disk}
    GET    /api/models/disk                disk usage of the volume
    GET    /api/models/{folder}            files of one folder
    DELETE /api/models/{folder}/{name}     delete one file (confined to models/<folder>)
    POST   /api/models/missing             {workflow} -> what is missing, who provides it
    POST   /api/models/install-missing     {workflow} -> install the providing presets / URLs
                                           (both: workflows/service.py, the workflow use case)

A URL a workflow names is offered (`install.kind == "url"`) with its `host` and whether that host
is `allowed` (MODEL_HOSTS + Settings, downloads/guard.py); install-missing downloads only from
allowed hosts and lists the rest under `refused` with the reason. The dashboard shows the hosts
and asks before downloading.

A file entry: `name` (relative to its folder, `/` for sub-folders), `size`, `mtime` (epoch s),
`owners` (ids of the catalog presets that name this file) and `partial` for a `.part` download.
Listings follow symbolic links only while they stay on the volume, enter each folder once and
stop at 20,000 files (`truncated: true`).
Deleting a file that an installed preset needs answers 409 unless `force=true`.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...errors import Conflict, InvalidInput, NotFound
from ...model_paths import EXTRA_FOLDERS, LEGACY_SUBFOLDERS, MODEL_FOLDERS, suggest_folder
from ...services import Services
from ..deps import DashboardDep, ServicesDep, WorkflowsDep, presets_of
from ..errors import COMMON_ERRORS, error_responses

router = APIRouter(prefix="/api/models", tags=["models"], responses=error_responses(*COMMON_ERRORS))

KNOWN_FOLDERS: tuple[str, ...] = (
    *MODEL_FOLDERS,
    *(sub for subs in LEGACY_SUBFOLDERS.values() for sub in subs),
    *EXTRA_FOLDERS,
)
MAX_WORKFLOW_BYTES = 20 * 1024 * 1024


class MissingRequest(BaseModel):
    workflow: dict[str, Any] = Field(description="A workflow in the UI format or an API prompt")


class InstallMissingRequest(BaseModel):
    workflow: dict[str, Any]


def check_folder(folder: str) -> str:
    if folder not in KNOWN_FOLDERS:
        hint = suggest_folder(folder)
        raise NotFound(
            f"'{folder}' is not a model folder",
            hint=f"did you mean '{hint}'?" if hint else "see GET /api/models for the folders",
            folder=folder,
        )
    return folder


def check_relative_name(name: str, what: str = "file name") -> list[str]:
    """The parts of a safe relative path; InvalidInput for traversal, absolute, NUL, backslash."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or len(name) > 1024:
        raise InvalidInput(f"'{name[:200]}' is not a valid {what}", hint="use a plain relative name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(
            f"'{name[:200]}' is not a valid {what}",
            hint="no '..', '.' or empty parts; the path stays inside its folder",
        )
    if any(ord(c) < 0x20 for c in name):
        raise InvalidInput(f"'{name[:200]}' contains control characters")
    return parts


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


MAX_FILES = 20_000  # a listing stops here (`truncated`)
MAX_DEPTH = 16


def _list_folder(base: Path, volume: Path) -> tuple[list[dict[str, Any]], bool]:
    """The files under `base`, and whether the listing stopped at MAX_FILES.

    Symbolic links are followed only while they stay on the volume (a link to /etc is neither
    listed nor entered); each real folder is entered once (a link loop ends there); depth and
    count are bounded."""
    files: list[dict[str, Any]] = []
    real_volume = os.path.realpath(volume)
    if not base.is_dir() or not _within(os.path.realpath(base), real_volume):
        return files, False
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str, int]] = [(str(base), "", 0)]
    while stack:
        folder, rel_dir, depth = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = entry.name if not rel_dir else f"{rel_dir}/{entry.name}"
            try:
                if entry.is_symlink() and not _within(os.path.realpath(entry.path), real_volume):
                    continue  # leads off the volume
                if entry.is_dir():
                    if depth < MAX_DEPTH:
                        stack.append((entry.path, rel, depth + 1))
                    continue
                if not entry.is_file():
                    continue
                info = entry.stat()
            except OSError:
                continue  # a dangling link
            item: dict[str, Any] = {"name": rel, "size": info.st_size, "mtime": int(info.st_mtime)}
            if entry.name.endswith(".part"):
                item["partial"] = True
            files.append(item)
            if len(files) >= MAX_FILES:
                files.sort(key=lambda f: f["name"].lower())
                return files, True
    files.sort(key=lambda f: f["name"].lower())
    return files, False


def _owners(svc: Services, folder: str, name: str) -> list[str]:
    return svc.presets.owners_of(f"{folder}/{name}") if svc.presets is not None else []


def _installed_owners(svc: Services, folder: str, name: str) -> list[str]:
    """The presets that hold this file and are installed now (deleting it would break them)."""
    presets = svc.presets
    if presets is None:
        return []
    owners = presets.owners_of(f"{folder}/{name}")
    return [pid for pid in owners if presets.installed_state(pid) == "installed"]


async def _folder_view(svc: Services, folder: str) -> dict[str, Any]:
    files, truncated = await asyncio.to_thread(
        _list_folder, svc.workspace.models / folder, svc.workspace.root
    )
    for f in files:
        f["owners"] = [] if f.get("partial") else _owners(svc, folder, f["name"])
    view = {"files": files, "count": len(files), "bytes": sum(f["size"] for f in files)}
    if truncated:
        view["truncated"] = True
    return view


def _disk(svc: Services) -> dict[str, Any]:
    d = svc.workspace.disk_usage()
    return {
        "path": str(svc.workspace.root),
        "total": d.total,
        "used": d.used,
        "free": d.free,
        "percent": round(d.percent, 1),
    }


@router.get("", summary="Installed model files per folder, and disk usage")
async def list_models(
    svc: ServicesDep,
    include_empty: Annotated[bool, Query(description="also list folders with no files")] = False,
) -> dict[str, Any]:
    folders: dict[str, Any] = {}
    for folder in KNOWN_FOLDERS:
        if folder not in MODEL_FOLDERS and not (svc.workspace.models / folder).is_dir():
            continue
        view = await _folder_view(svc, folder)
        if view["count"] or include_empty:
            folders[folder] = view
    return {"folders": folders, "disk": await asyncio.to_thread(_disk, svc)}


@router.get("/disk", summary="Disk usage of the volume")
async def disk(svc: ServicesDep) -> dict[str, Any]:
    return await asyncio.to_thread(_disk, svc)


@router.get("/{folder}", summary="Files of one model folder", responses=error_responses(404))
async def list_folder(folder: str, svc: ServicesDep) -> dict[str, Any]:
    check_folder(folder)
    return {"folder": folder, **(await _folder_view(svc, folder))}


def resolve_model_file(svc: Services, folder: str, name: str) -> Path:
    """The file to delete, proven to lie inside models/<folder> and not to lead off the volume."""
    check_folder(folder)
    parts = check_relative_name(name)
    base = svc.workspace.models / folder
    real_base = os.path.realpath(base)
    target = base.joinpath(*parts)
    real_parent = os.path.realpath(target.parent)
    if not _within(real_parent, real_base):
        raise InvalidInput(f"'{name}' leads outside models/{folder}", hint="delete files inside the folder")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise NotFound(f"models/{folder}/{name} does not exist", folder=folder, name=name) from None
    if stat.S_ISLNK(st.st_mode):
        real_target = os.path.realpath(target)
        if not _within(real_target, os.path.realpath(svc.workspace.root)):
            raise InvalidInput(
                f"models/{folder}/{name} is a link to a file outside the volume; it is not deleted here",
                hint="remove the link from a shell if you meant to",
            )
    elif not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"models/{folder}/{name} is not a file")
    return target


@router.delete(
    "/{folder}/{name:path}",
    summary="Delete one model file",
    responses=error_responses(400, 404, 409),
)
async def delete_model(
    folder: str,
    name: str,
    dashboard: DashboardDep,
    force: Annotated[bool, Query(description="delete even when an installed preset owns it")] = False,
) -> dict[str, Any]:
    svc = dashboard.services
    target = resolve_model_file(svc, folder, name)
    owners = _installed_owners(svc, folder, name)
    if owners and not force:
        raise Conflict(
            f"models/{folder}/{name} belongs to the installed preset(s) {', '.join(owners)}",
            hint="uninstall the preset instead, or pass force=true",
            owners=owners,
        )
    size = target.lstat().st_size
    target.unlink()
    dashboard.preset_lists.clear()
    return {"status": "deleted", "folder": folder, "name": name, "bytes": size, "owners": owners}


@router.post(
    "/missing",
    summary="The model files a workflow needs that are not on the volume",
    responses=error_responses(400, 413),
)
async def missing(body: MissingRequest, workflows: WorkflowsDep) -> dict[str, Any]:
    items = [m.to_dict() for m in await workflows.missing(workflows.accept(body.workflow))]
    return {
        "missing": items,
        "total": len(items),
        "installable": sum(1 for i in items if i["install"]),
    }


@router.post(
    "/install-missing",
    summary="Install what a workflow is missing (its presets, or the URLs it names on allowed hosts)",
    responses=error_responses(400, 404, 409, 413, 503, 507),
)
async def install_missing(
    body: InstallMissingRequest, dashboard: DashboardDep, workflows: WorkflowsDep
) -> dict[str, Any]:
    presets_of(dashboard.services)  # 403 / 503 when installs are off or the service is down
    items = await workflows.missing(workflows.accept(body.workflow))
    done = await workflows.install_missing(items, label="workflow models")
    dashboard.preset_lists.clear()
    return {
        "tasks": [task.to_dict() for task in done.tasks],
        "unresolved": [m.to_dict() for m in done.unresolved],
        "refused": [
            {"folder": m.ref.folder, "name": m.ref.name, "url": m.ref.url, "why": m.refusal}
            for m in done.refused
        ],
        "missing": len(items),
    }
