"""One limit on request bodies for every dashboard route (20 MB, as the workflow upload), 8 KiB
for the login form; ComfyUI's API under `/api/comfyui/` streams through unlimited (uploads of
models and images go there).

A body announced larger than its limit (`Content-Length`) is refused with 413 before a byte of it
is read; a body without a length is counted as the route reads it and cut off with 413 at the
limit. Nothing is spooled to disk or held beyond the limit. The middleware sits inside the auth
middleware, so an unauthenticated client gets its 401 without a byte read either.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_payload

MIB = 1024 * 1024
JSON_LIMIT = 20 * MIB + 64 * 1024  # 20 MB of content plus room for a multipart envelope
LOGIN_LIMIT = 8 * 1024
PATH_LIMITS = {"/login": LOGIN_LIMIT, "/logout": LOGIN_LIMIT}
UNLIMITED_PREFIXES = ("/api/comfyui/",)


def limit_for(path: str) -> int | None:
    if path.startswith(UNLIMITED_PREFIXES):
        return None
    return PATH_LIMITS.get(path, JSON_LIMIT)


def _too_large(limit: int) -> str:
    size = f"{limit // 1024} KiB" if limit < MIB else f"{limit // MIB} MB"
    return f"the request body is larger than {size}"


def _hint(path: str) -> str:
    if path in PATH_LIMITS:
        return "the form takes a password of at most 1024 characters"
    return "workflows and prompts are at most 20 MB; images and models go to ComfyUI's /api/comfyui/upload"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                length = int(value) if value.isdigit() else None
        if length is not None and length > limit:
            payload = error_payload(413, _too_large(limit), hint=_hint(scope["path"]))
            await JSONResponse(payload, 413, {"connection": "close"})(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)
