"""Generate: placeholder until its section lands."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render

router = APIRouter()


@router.get("/generate", response_class=HTMLResponse)
async def generate_page(request: Request) -> HTMLResponse:
    return render(request, "generate.html", {"title": "Generate"})
