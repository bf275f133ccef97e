"""Outputs: the gallery of workspace/output (newest first), full size, zip, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from ... import outputs as gallery
from ...errors import AppError, InvalidInput
from .rendering import render, render_partial, services

router = APIRouter()
PAGE_SIZE = 48


def _error(request: Request, exc: AppError) -> HTMLResponse:
    return render(request, "error.html", {"title": "Error", "error": exc}, status_code=exc.status)


def _gallery(request: Request, page: int, notice: str = "") -> HTMLResponse:
    root = services(request).workspace.output
    page = max(1, page)
    items, total = gallery.list_outputs(root, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "outputs.html",
        {
            "title": "Outputs",
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "notice": notice,
        },
    )


@router.get("/outputs", response_class=HTMLResponse)
async def outputs_page(request: Request, page: Annotated[int, Query(ge=1, le=100000)] = 1) -> HTMLResponse:
    return _gallery(request, page)


@router.get("/outputs/file/{rel:path}", response_model=None)
async def output_file(request: Request, rel: str, download: bool = False) -> Response:
    try:
        path = gallery.resolve(services(request).workspace.output, rel)
    except AppError as exc:
        return _error(request, exc)
    return FileResponse(
        path,
        filename=path.name,
        content_disposition_type="attachment" if download else "inline",
        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/outputs/meta/{rel:path}", response_class=HTMLResponse)
async def output_meta(request: Request, rel: str) -> HTMLResponse:
    try:
        path = gallery.resolve(services(request).workspace.output, rel)
    except AppError as exc:
        return _error(request, exc)
    st = path.stat()
    item = gallery.OutputItem(rel, st.st_size, st.st_mtime)
    return render_partial(request, "_output_meta.html", {"item": item, "meta": gallery.metadata(path)})


@router.get("/outputs/zip", response_model=None)
async def outputs_zip(request: Request, f: Annotated[list[str] | None, Query()] = None) -> Response:
    try:
        files = gallery.check_selection(services(request).workspace.output, f or [])
    except AppError as exc:
        return _error(request, exc)
    return StreamingResponse(
        gallery.zip_stream(files),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="outputs.zip"', "Cache-Control": "no-store"},
    )


@router.post("/outputs/delete", response_class=HTMLResponse)
async def outputs_delete(
    request: Request, f: Annotated[list[str] | None, Form()] = None, page: Annotated[int, Form()] = 1
) -> HTMLResponse:
    try:
        if not f:
            raise InvalidInput("nothing selected", hint="tick one or more outputs first")
        deleted = gallery.delete(services(request).workspace.output, f)
    except AppError as exc:
        return _error(request, exc)
    n = len(deleted)
    return _gallery(request, page, notice=f"Deleted {n} file{'s' if n != 1 else ''}.")
