"""Nodes: the image's and the volume's custom nodes (commit, import state with the error's last
line, packages), install from a git URL, update, remove, with live output.

The page's script works on `/api/nodes` and keeps itself live with `node_task` events on `/ws`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render, services

router = APIRouter()


@router.get("/nodes", response_class=HTMLResponse)
async def nodes_page(request: Request) -> HTMLResponse:
    svc = services(request)
    return render(
        request,
        "nodes.html",
        {"title": "Nodes", "folder": str(svc.workspace.custom_nodes), "python": str(svc.workspace.python)},
    )
