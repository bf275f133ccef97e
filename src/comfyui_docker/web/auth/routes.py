"""The auth routes: the login form, log in and out, nginx's `/auth/verify`, status, token, sessions."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ...errors import InvalidInput, UnsupportedMediaType
from ..dashboard import dashboard_of
from ..errors import error_payload, error_responses
from .middleware import request_auth
from .policy import (
    API_SCOPE,
    CSRF_COOKIE,
    DEVICE_COOKIE,
    DEVICE_MAX_AGE,
    SAFE_METHODS,
    SCOPE_HEADER,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Auth,
    AuthResult,
    Refusal,
    api_refusal,
    header_dict,
    safe_next,
)

if TYPE_CHECKING:  # jinja2 is imported on the first page that needs it, not at start-up
    from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent.parent / "templates"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_PASSWORD = 1024
MAX_NEXT = 2048

router = APIRouter(tags=["auth"])


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The login and error pages' templates (built on first use: jinja2 costs start-up time)."""
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def get_auth(request: Request) -> Auth:
    return dashboard_of(request).auth


def _result(request: Request) -> AuthResult:
    found = request_auth(request.scope)
    return found if found is not None else get_auth(request).authenticate(header_dict(request.scope))


def _login_page(request: Request, *, next_url: str, error: str | None, status: int) -> Response:
    return templates().TemplateResponse(
        request,
        "auth/login.html",
        {"next_url": next_url, "error": error, "password_set": get_auth(request).enabled},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


def _no_store(status: int, refusal: Refusal | None = None) -> Response:
    if refusal is None:
        return Response(status_code=status, headers={"cache-control": "no-store"})
    payload = error_payload(refusal.status, refusal.message, code=refusal.code, hint=refusal.hint)
    return JSONResponse(payload, status_code=refusal.status, headers={"cache-control": "no-store"})


async def read_form(request: Request) -> dict[str, str]:
    """The login form: `application/x-www-form-urlencoded` only (body size: see web/body.py)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise UnsupportedMediaType(
            f"the login form must be sent as {FORM_TYPE}",
            hint="post password=...&next=... as an HTML form does",
        )
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the login form is not valid URL-encoded text") from None
    form = dict(pairs)
    for key, most in (("password", MAX_PASSWORD), ("next", MAX_NEXT)):
        if len(form.get(key, "")) > most:
            raise InvalidInput(f"{key}: at most {most} characters")
    return form


@router.get("/login", response_class=HTMLResponse, summary="Login form")
async def login_form(request: Request, next: str | None = None) -> Response:
    auth = get_auth(request)
    target = safe_next(next)
    if not auth.enabled:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_url=target, error=None, status=200)


_FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "password": {"type": "string", "maxLength": MAX_PASSWORD},
        "next": {"type": "string", "maxLength": MAX_NEXT, "default": "/"},
    },
}


@router.post(
    "/login",
    response_class=HTMLResponse,
    summary="Log in with the access password",
    description="A URL-encoded form of at most 8 KiB. After failed attempts an address must wait "
    "longer and longer (429 with Retry-After); a browser that logged in here before is not held up "
    "by other clients' failures.",
    openapi_extra={"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": _FORM_SCHEMA}}}},
    responses={
        303: {"description": "Logged in: the session cookie is set, redirect to `next`"},
        401: {"description": "Wrong password (the form again, with a message)"},
        **error_responses(400, 403, 413, 415, 429),
    },
)
async def login(request: Request) -> Response:
    auth = get_auth(request)
    form = await read_form(request)
    target = safe_next(form.get("next") or "/")
    if not auth.enabled:
        return RedirectResponse(target, status_code=303)
    headers = header_dict(request.scope)
    ip = auth.client_address(request.scope, headers)
    device = auth.device_id(headers)
    wait = auth.backoff.wait(ip, device)
    if wait:
        response = _login_page(
            request, next_url=target, error=f"Too many failed attempts. Try again in {wait} s.", status=429
        )
        response.headers["retry-after"] = str(wait)
        return response
    if not auth.check_password(form.get("password", "")):
        auth.backoff.failed(ip, device)
        return _login_page(request, next_url=target, error="Wrong password.", status=401)
    auth.backoff.succeeded(ip, device)
    previous = _result(request).session_id
    if previous:
        auth.sessions.end(previous)  # a fresh session id at every login
    cookie, csrf = auth.new_session(ip)
    secure = auth.is_https(request.scope, headers)
    response = RedirectResponse(target, status_code=303)
    common: dict[str, Any] = {"samesite": "lax", "secure": secure, "path": "/"}
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=SESSION_MAX_AGE, httponly=False, **common)
    if device is None:
        response.set_cookie(DEVICE_COOKIE, auth.new_device(), max_age=DEVICE_MAX_AGE, httponly=True, **common)
    return response


@router.post(
    "/logout",
    summary="Log out: ends this session on the server and clears its cookies",
    responses={303: {"description": "Logged out; redirect to the login page"}, **error_responses(403, 413)},
)
async def logout(request: Request) -> Response:
    auth = get_auth(request)
    sid = _result(request).session_id
    if sid:
        auth.sessions.end(sid)
    response = RedirectResponse("/login", status_code=303)
    secure = auth.is_https(request.scope, header_dict(request.scope))
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=secure, httponly=name == SESSION_COOKIE, samesite="lax")
    return response


@router.get(
    "/auth/verify",
    status_code=204,
    summary="For nginx auth_request: 204 when the request may pass, 401/403 otherwise",
    responses={
        204: {"description": "Authenticated (or no password set) and not cross-site"},
        **error_responses(401, 403),
    },
)
async def verify(request: Request) -> Response:
    """nginx passes the original request's headers, plus `X-Original-Method` and
    `X-Original-Upgrade`. On ComfyUI's port a cookie session's change must be first-party (see
    `Auth.change_refusal`) and a WebSocket must come from our own page. A wrong Bearer token
    counts as a failed attempt (nginx cannot pass a 429 on: the answer stays 401)."""
    auth = get_auth(request)
    headers = header_dict(request.scope)
    method = headers.get("x-original-method", "GET").upper()
    websocket = headers.get("x-original-upgrade", "").strip().lower() == "websocket"
    result = _result(request)
    if headers.get(SCOPE_HEADER, "").strip().lower() == API_SCOPE:
        # nginx serving /api/comfyui/* on the dashboard's port: the middleware's own rule; a
        # refusal is replayed to the dashboard, whose middleware counts a bad token there
        refusal = api_refusal(auth, headers, method, websocket=websocket)
        return _no_store(204) if refusal is None else _no_store(refusal.status, refusal)
    if websocket:
        refusal = auth.websocket_refusal(headers, result)
    elif method not in SAFE_METHODS:
        refusal = auth.change_refusal(headers, result, csrf=False)
    else:
        refusal = None
    if refusal is not None and refusal.status != 401:
        return _no_store(refusal.status, refusal)
    if result.ok:
        return _no_store(204)
    if result.bad_token:
        ip = auth.client_address(request.scope, headers)
        if not auth.backoff.wait(ip):
            auth.backoff.failed(ip)
    return _no_store(401, Refusal(401, "unauthorized", "login required", "log in at /login"))


@router.get(
    "/api/auth/status",
    summary="Whether a password is set and how this request is authenticated",
    responses=error_responses(401, 500),
)
async def auth_status(request: Request) -> dict[str, Any]:
    result = _result(request)
    return {
        "password_set": get_auth(request).enabled,
        "method": result.method,
        "csrf_token": result.csrf_token,
    }


@router.get(
    "/api/auth/token",
    summary="The Bearer token for API clients (for the Settings page)",
    responses=error_responses(401, 500),
)
async def api_token(request: Request) -> JSONResponse:
    auth = get_auth(request)
    return JSONResponse(
        {"token": auth.api_token(), "password_set": auth.enabled},
        headers={"cache-control": "no-store"},
    )


@router.get(
    "/api/auth/sessions",
    summary="The logged-in browsers (server-side sessions) of this volume",
    responses=error_responses(401, 500),
)
async def sessions(request: Request) -> JSONResponse:
    auth = get_auth(request)
    items = auth.sessions.list(_result(request).session_id) if auth.enabled else []
    return JSONResponse({"sessions": items, "count": len(items)}, headers={"cache-control": "no-store"})


@router.delete(
    "/api/auth/sessions",
    summary="Log out everywhere: end every session of this volume (Bearer tokens keep working)",
    responses=error_responses(401, 403, 500),
)
async def end_sessions(request: Request) -> JSONResponse:
    auth = get_auth(request)
    ended = auth.sessions.end_all() if auth.enabled else 0
    response = JSONResponse({"ended": ended}, headers={"cache-control": "no-store"})
    if _result(request).method == "session":
        response.headers["hx-redirect"] = "/login"
        secure = auth.is_https(request.scope, header_dict(request.scope))
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(
                name, path="/", secure=secure, httponly=name == SESSION_COOKIE, samesite="lax"
            )
    return response
