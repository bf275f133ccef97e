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


#: What is shown in the browser; anything else in the output folder (ComfyUI's
#: /upload/image?type=output takes any file: .html, .svg...) is only ever downloaded.
INLINE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
}


@router.get("/outputs/file/{rel:path}", response_model=None)
async def output_file(request: Request, rel: str, download: bool = False) -> Response:
    """An output file: images, videos and audio inline with their own type; any other file as an
    `application/octet-stream` download. Always under `Content-Security-Policy: sandbox`, so even a
    file that a browser would render runs no script on the dashboard's origin."""
    try:
        path = gallery.resolve(services(request).workspace.output, rel)
    except AppError as exc:
        return _error(request, exc)
    media = INLINE_TYPES.get(path.suffix.lower())
    return FileResponse(
        path,
        media_type=media or "application/octet-stream",
        filename=path.name,
        content_disposition_type="inline" if media and not download else "attachment",
        headers={
            "Cache-Control": "private, max-age=60",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; media-src 'self'",
        },
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
