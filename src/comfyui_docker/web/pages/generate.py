"""Generate: a form on the built-in templates, live progress, the images.

The page's script queues through `POST /api/generate` (web/api/run.py): `{builtin, values}` for
the form, `{template, set}` for an official template. When the runtime relays ComfyUI's frames
onto the bus (`relay`), progress arrives as `generation` events on `/ws`; otherwise the page opens
ComfyUI's own socket through the proxy with its client id before queueing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import generate as gen
from ...errors import AppError
from ...model_lookup import list_models
from ...services import Services
from .rendering import render, services

router = APIRouter()


def installed_models(svc: Services, folder: str | None) -> list[str]:
    if not folder:
        return []
    table = {folder: [svc.workspace.models / folder]}
    try:
        return list_models(table, folder)
    except OSError:
        return []


def relayed(svc: Services) -> bool:
    """Whether ComfyUI's progress frames reach the bus (and so the page's `/ws`)."""
    return svc.comfyui is not None and svc.comfyui.relayed


def _official_tags() -> list[str]:
    from .official import library

    try:
        return library().tags()
    except AppError:
        return []


@router.get("/generate", response_class=HTMLResponse)
async def generate_page(request: Request, template: str = "demo") -> HTMLResponse:
    svc = services(request)
    tmpl = gen.TEMPLATES.get(template) or gen.TEMPLATES["demo"]
    return render(
        request,
        "generate.html",
        {
            "title": "Generate",
            "templates": gen.TEMPLATES,
            "tmpl": tmpl,
            "models": installed_models(svc, tmpl.model_folder),
            "relay": relayed(svc),
            "official_tags": _official_tags(),
        },
    )
