"""Workflows: list, drag-and-drop upload, download, rename, delete, run, and "check models".

The page's script works on `/api/workflows` and `/api/models/missing` / `install-missing`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render, services

router = APIRouter()


@router.get("/workflows", response_class=HTMLResponse)
async def workflows_page(request: Request) -> HTMLResponse:
    svc = services(request)
    return render(request, "workflows.html", {"title": "Workflows", "folder": str(svc.workspace.workflows)})
