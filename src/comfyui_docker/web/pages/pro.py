"""Pro: placeholder until its section lands."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .rendering import render

router = APIRouter()


@router.get("/pro", response_class=HTMLResponse)
async def pro_page(request: Request) -> HTMLResponse:
    return render(request, "pro.html", {"title": "Pro"})
