"""One error shape for the whole API, and the handlers that produce it.

Every failure under `/api/*` (and the auth endpoints) answers with

    {"error": {"code": "preset_not_found", "message": "...", "hint": "...", "details": {...}}}

`hint` and `details` are optional. The four sources are handled here: our `AppError` hierarchy
(status from the class), Starlette's `HTTPException` (404 for an unknown route, 405...), request
validation errors (422, the offending fields listed, the submitted values left out so that a
password typed into the wrong field never echoes back) and unexpected exceptions (500 with no
internals; the traceback goes to the log only). Pages (not `/api`) get a small HTML page instead
when the browser asks for HTML.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AppError

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    507: "insufficient_storage",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str | None = None
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The JSON shape of every API error."""

    error: ErrorBody


_DESCRIPTIONS = {
    400: "Bad input (a bad name, path or parameter); the message says what to change",
    401: "Login required: send the session cookie or `Authorization: Bearer <token>`",
    403: "Refused (CSRF check failed, cross-site request, or not allowed)",
    404: "Unknown id, name or file",
    409: "Conflict: it exists already or is busy",
    413: "Upload too large",
    415: "Unsupported content type",
    422: "The request does not match the schema (fields listed in details)",
    429: "Too many attempts; retry after `Retry-After` seconds",
    500: "Internal error (details in the dashboard log)",
    502: "ComfyUI answered with something unusable",
    503: "The service (ComfyUI, presets) is not ready; `details.state` says why",
    507: "Not enough free space on the volume",
}

#: Every API route can answer these (auth, CSRF, schema, internal).
COMMON_ERRORS = (401, 403, 422, 500)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these statuses, all with the one error shape."""
    return {
        s: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(s, _CODES.get(s, "Error")),
            # errors are JSON also on routes whose success is HTML (the login form)
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
        for s in statuses
    }


def error_payload(
    status: int,
    message: str,
    *,
    code: str | None = None,
    hint: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code or _CODES.get(status, f"http_{status}"), "message": message}
    if hint:
        body["hint"] = hint
    if details:
        body["details"] = details
    return {"error": body}


def wants_json(scope_path: str, accept: str) -> bool:
    """JSON for the API and for clients that do not ask for HTML."""
    if scope_path.startswith(("/api/", "/auth/", "/health")) or scope_path == "/api":
        return True
    return "text/html" not in accept


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    code: str | None = None,
    hint: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    payload = error_payload(status, message, code=code, hint=hint, details=details)
    if wants_json(request.url.path, request.headers.get("accept", "")):
        return JSONResponse(payload, status_code=status, headers=headers)
    return HTMLResponse(_html_page(status, message, hint), status_code=status, headers=headers)


def _html_page(status: int, message: str, hint: str | None) -> str:
    hint_html = f"<p>{html.escape(hint)}</p>" if hint else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status} - ComfyUI-Docker</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem'>"
        f"<h1>{status}</h1><p>{html.escape(message)}</p>{hint_html}"
        "<p><a href='/'>Back to the dashboard</a></p></body></html>"
    )


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    headers: dict[str, str] = {}
    retry = exc.details.get("retry_after") if exc.details else None
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    allow = exc.details.get("allow") if exc.details else None
    if allow:
        headers["Allow"] = ", ".join(allow)
    if exc.status >= 500:
        log.warning("%s %s -> %s %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(
        request,
        exc.status,
        exc.message,
        code=exc.code,
        hint=exc.hint,
        details=exc.details or None,
        headers=headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "error")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such page or endpoint: {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        allowed = allowed_methods(request)
        if allowed:
            kept = {k: v for k, v in (headers or {}).items() if k.lower() != "allow"}
            headers = {**kept, "allow": ", ".join(sorted(allowed))}
    return error_response(request, exc.status_code, message, headers=headers)


def allowed_methods(request: Request) -> set[str]:
    """Every method some route accepts on this path (one route per method here, so Starlette's
    own `Allow` lists only the first)."""
    static, templated = _methods_by_kind(request)
    # a fixed path (/api/presets/tasks) is its own resource, even where a template also matches
    return static or templated


def _methods_by_kind(request: Request) -> tuple[set[str], set[str]]:
    """(methods of fixed-path routes, methods of templated routes) matching this path."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Match

    static: set[str] = set()
    templated: set[str] = set()
    scope = {**request.scope, "method": "\x00"}
    for route in iter_route_contexts(request.app.routes):
        try:
            match, _ = route.matches(scope)
        except (AttributeError, TypeError):
            continue
        if match != Match.NONE:
            methods = getattr(route, "methods", None) or ()
            (templated if "{" in str(route.path) else static).update(methods)
    return static, templated


def _wrong_method_on_a_fixed_path(request: Request, fields: list[dict[str, Any]]) -> set[str] | None:
    """`DELETE /api/presets/tasks` matches the template `/api/presets/{preset_id}` and fails its
    pattern (422); but /api/presets/tasks is its own resource, taking GET only: that is a 405."""
    if not fields or any(f["loc"][:1] != ["path"] for f in fields):
        return None
    static, _ = _methods_by_kind(request)
    if static and request.method not in static:
        return static
    return None


def _clean_validation(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "message": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = _clean_validation(exc.errors())
    allowed = _wrong_method_on_a_fixed_path(request, fields)
    if allowed is not None:
        return error_response(
            request,
            405,
            f"{request.method} is not allowed on {request.url.path}",
            headers={"allow": ", ".join(sorted(allowed))},
        )
    first = fields[0] if fields else None
    if first is not None:
        where = ".".join(p for p in first["loc"] if p not in ("body",)) or "body"
        message = f"{where}: {first['message']}"
    else:
        message = "the request does not match the expected schema"
    if first is not None and first["type"] == "json_invalid":
        message = "the body is not valid JSON"
        return error_response(
            request,
            422,
            message,
            code="malformed_json",
            hint="send a JSON object with Content-Type: application/json",
            details={"errors": fields},
        )
    return error_response(
        request,
        422,
        message,
        code="validation_error",
        hint="check the fields listed in details.errors",
        details={"errors": fields},
    )


class CatchAllMiddleware:
    """Turn an unexpected exception into a 500 in the one shape (no traceback to the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            request = Request(scope)
            response = error_response(
                request,
                500,
                "internal error; the details are in the dashboard log",
                hint="try again; if it persists, look at workspace/logs/dashboard.log",
            )
            await response(scope, receive, send)


def document_common_answers(app: FastAPI) -> None:
    """Add to the OpenAPI schema what the middleware answers on every route, so the schema says
    what the API does: 413 where a body is taken (web/body.py), 429 where a wrong Bearer token can
    be sent (the backoff), 403 everywhere but /health (an unknown host without a password)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                extra = []
                if "requestBody" in op:
                    extra.append(413)
                if "401" in responses and path != "/auth/verify":
                    extra.append(429)
                if path != "/health":
                    extra.append(403)
                for status, entry in error_responses(*extra).items():
                    raw = {k: v for k, v in entry.items() if k != "model"}  # the schema's own form
                    responses.setdefault(str(status), raw)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(CatchAllMiddleware)
