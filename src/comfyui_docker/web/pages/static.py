"""Static assets (our app.js, the built app.css, vendored htmx / Alpine.js).

Served from memory with a gzip copy made once per file version, a strong ETag, and a year of
caching when the URL carries the content hash (`asset_url` adds `?v=<hash>`): a slow RunPod
proxy then downloads each asset once. No CDN, nothing fetched at run time.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    mtime_ns: int
    size: int
    raw: bytes
    gz: bytes
    digest: str
    media_type: str


_cache: dict[Path, Asset] = {}


def _load(path: Path) -> Asset | None:
    try:
        st = path.stat()
    except OSError:
        return None
    cached = _cache.get(path)
    if cached is not None and cached.mtime_ns == st.st_mtime_ns and cached.size == st.st_size:
        return cached
    raw = path.read_bytes()
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media.endswith("javascript"):
        media += "; charset=utf-8"
    asset = Asset(
        mtime_ns=st.st_mtime_ns,
        size=st.st_size,
        raw=raw,
        gz=gzip.compress(raw, 9, mtime=0),
        digest=hashlib.sha256(raw).hexdigest()[:16],
        media_type=media,
    )
    _cache[path] = asset
    return asset


def _resolve(rel: str) -> Path | None:
    if "\x00" in rel or rel.startswith("/") or "\\" in rel:
        return None
    path = (STATIC / rel).resolve()
    try:
        path.relative_to(STATIC.resolve())
    except ValueError:
        return None
    return path if path.is_file() else None


def asset_url(rel: str) -> str:
    """`/static/<rel>?v=<content hash>`; a missing asset keeps its plain URL (the page shows it)."""
    path = _resolve(rel)
    asset = _load(path) if path else None
    return f"/static/{rel}?v={asset.digest}" if asset else f"/static/{rel}"


@router.get("/static/{rel:path}")
async def static_file(rel: str, request: Request) -> Response:
    path = _resolve(rel)
    asset = _load(path) if path else None
    if asset is None:
        hint = ""
        if rel.startswith("vendor/") or rel == "app.css":
            hint = " (front-end build output: run `make install` or scripts/build-frontend.sh)"
        return Response(f"not found: {rel}{hint}\n", status_code=404, media_type="text/plain")
    etag = f'"{asset.digest}"'
    headers = {"ETag": etag, "Vary": "Accept-Encoding"}
    if request.query_params.get("v") == asset.digest:
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        headers["Cache-Control"] = "no-cache"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gz, media_type=asset.media_type, headers=headers)
    return Response(asset.raw, media_type=asset.media_type, headers=headers)
