"""The auth routes: the login form, log in and out, nginx's `/auth/verify`, status and token."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..errors import error_payload, error_responses
from .policy import (
    API_SCOPE,
    CSRF_COOKIE,
    SAFE_METHODS,
    SCOPE_HEADER,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Auth,
    api_refusal,
    client_ip,
    header_dict,
    is_https,
    safe_next,
)

if TYPE_CHECKING:  # jinja2 is imported on the first page that needs it, not at start-up
    from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent.parent / "templates"

router = APIRouter(tags=["auth"])


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The login and error pages' templates (built on first use: jinja2 costs start-up time)."""
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def get_auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _login_page(request: Request, *, next_url: str, error: str | None, status: int) -> Response:
    return templates().TemplateResponse(
        request,
        "auth/login.html",
        {"next_url": next_url, "error": error, "password_set": get_auth(request).enabled},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


@router.get("/login", response_class=HTMLResponse, summary="Login form")
async def login_form(request: Request, next: str | None = None) -> Response:
    auth = get_auth(request)
    target = safe_next(next)
    if not auth.enabled:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_url=target, error=None, status=200)


@router.post(
    "/login",
    response_class=HTMLResponse,
    summary="Log in with the access password",
    responses={
        303: {"description": "Logged in: the session cookie is set, redirect to `next`"},
        401: {"description": "Wrong password (the form again, with a message)"},
        **error_responses(403, 422, 429),
    },
)
async def login(
    request: Request,
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    auth = get_auth(request)
    target = safe_next(next)
    if not auth.enabled:
        return RedirectResponse(target, status_code=303)
    headers = header_dict(request.scope)
    ip = client_ip(request.scope, headers)
    wait = auth.limiter.retry_after(ip)
    if wait:
        response = _login_page(
            request, next_url=target, error=f"Too many attempts. Try again in {wait} s.", status=429
        )
        response.headers["retry-after"] = str(wait)
        return response
    if not auth.check_password(password):
        auth.limiter.failed(ip)
        return _login_page(request, next_url=target, error="Wrong password.", status=401)
    auth.limiter.succeeded(ip)
    cookie, csrf = auth.new_session()
    secure = is_https(request.scope, headers)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=SESSION_MAX_AGE, httponly=False, samesite="lax", secure=secure, path="/"
    )
    return response


@router.post(
    "/logout",
    summary="Log out (clears the session cookie)",
    responses={303: {"description": "Logged out; redirect to the login page"}, **error_responses(403)},
)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    secure = is_https(request.scope, header_dict(request.scope))
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=secure, httponly=name == SESSION_COOKIE, samesite="lax")
    return response


@router.get(
    "/auth/verify",
    status_code=204,
    summary="For nginx auth_request: 204 when logged in, 401 otherwise",
    responses={
        204: {"description": "Authenticated (or no password set)"},
        **error_responses(401, 403),
    },
)
async def verify(request: Request) -> Response:
    headers = header_dict(request.scope)
    method = headers.get("x-original-method", "GET").upper()
    origin = headers.get("origin")
    auth = get_auth(request)
    if (
        method not in SAFE_METHODS
        and request.state.auth_method != "token"
        and origin
        and origin != "null"
        and not auth.same_origin(origin, headers)
    ):
        # a page on another site (another pod's subdomain is "same-site" for SameSite=Lax)
        # posting to ComfyUI's port with the user's cookie
        return JSONResponse(
            error_payload(403, "cross-site request refused", code="csrf_failed"),
            status_code=403,
            headers={"cache-control": "no-store"},
        )
    if headers.get(SCOPE_HEADER, "").strip().lower() == API_SCOPE:
        # nginx serving /api/comfyui/* on the dashboard's port: the middleware's own rule
        websocket = headers.get("x-original-upgrade", "").strip().lower() == "websocket"
        refusal = api_refusal(auth, headers, method, websocket=websocket)
        if refusal is not None:
            status, code, message = refusal
            return JSONResponse(
                error_payload(status, message, code=code),
                status_code=status,
                headers={"cache-control": "no-store"},
            )
    if request.state.auth_method in ("open", "session", "token"):
        return Response(status_code=204, headers={"cache-control": "no-store"})
    return JSONResponse(
        error_payload(401, "login required"), status_code=401, headers={"cache-control": "no-store"}
    )


@router.get(
    "/api/auth/status",
    summary="Whether a password is set and how this request is authenticated",
    responses=error_responses(401, 500),
)
async def auth_status(request: Request) -> dict[str, Any]:
    return {
        "password_set": bool(request.state.password_set),
        "method": request.state.auth_method,
        "csrf_token": request.state.csrf_token,
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
