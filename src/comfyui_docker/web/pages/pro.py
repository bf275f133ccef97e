"""Pro: live log tail (follow, search), restart ComfyUI, ComfyUI's queue, links, environment, versions."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from . import state
from .home import _links
from .rendering import render, services

router = APIRouter()


def _versions() -> dict[str, str]:
    out = {"comfyui-docker": state.version(), "python": platform.python_version()}
    for dist in ("fastapi", "uvicorn", "aiohttp", "jinja2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


@router.get("/pro", response_class=HTMLResponse)
async def pro_page(request: Request) -> HTMLResponse:
    svc = services(request)
    env = svc.settings.public_items()
    return render(
        request,
        "pro.html",
        {
            "title": "Pro",
            "env": env,
            "versions": _versions(),
            "links": _links(request),
            "executable": sys.executable,
            "instances": svc.instance_names(),
        },
    )
