"""Generate page, second half: ComfyUI's official templates (search by name and tag, see and install
the models a template needs, fill its main inputs, run it through `POST /api/generate {template}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ...errors import AppError
from .rendering import render_partial, services

if TYPE_CHECKING:  # the template library is loaded on first use, not at start-up
    from ...workflows.templates import TemplateLibrary

router = APIRouter()
LIST_LIMIT = 40


def library() -> TemplateLibrary:
    from ...workflows.templates import default_library

    return default_library()


@router.get("/generate/official", response_class=HTMLResponse)
async def official_list(request: Request, q: str = "", tag: str = "") -> HTMLResponse:
    try:
        found = library().search(q[:200], tag or None)
        tags = library().tags()
        error = None
    except AppError as exc:
        found, tags, error = [], [], exc
    return render_partial(
        request,
        "_official_list.html",
        {"found": found[:LIST_LIMIT], "total": len(found), "tags": tags, "q": q, "tag": tag, "error": error},
    )


async def _inputs(request: Request, name: str) -> tuple[list[dict[str, Any]], str]:
    """The template's main inputs (needs ComfyUI's node definitions), or why they are not shown."""
    from ...workflows.params import main_inputs
    from ..deps import workflows

    use = workflows(services(request))
    try:
        prepared = await use.prepare(use.template(name))
    except AppError as exc:
        return [], f"{exc.message}{' — ' + exc.hint if exc.hint else ''}"
    nodes = prepared.definitions.nodes if prepared.definitions else {}
    return main_inputs(prepared.prompt, nodes), ""


@router.get("/generate/official/{name}", response_class=HTMLResponse)
async def official_detail(request: Request, name: str) -> HTMLResponse:
    svc = services(request)
    try:
        info = library().get(name)
        files = library().files(name)
    except AppError as exc:
        return render_partial(request, "_official_detail.html", {"error": exc}, status_code=exc.status)
    for f in files:
        f["present"] = (svc.workspace.models / f["path"]).is_file()
    inputs, why = await _inputs(request, name)
    return render_partial(
        request,
        "_official_detail.html",
        {
            "info": info,
            "files": files,
            "missing": sum(1 for f in files if not f["present"]),
            "inputs": inputs,
            "why": why,
        },
    )


@router.get("/generate/official/{name}/workflow")
async def official_workflow(name: str) -> JSONResponse:
    try:
        return JSONResponse(library().load(name))
    except AppError as exc:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)
