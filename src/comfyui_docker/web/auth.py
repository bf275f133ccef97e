"""The login that guards every port: session cookie, Bearer token, CSRF, rate limit.

Without `ACCESS_PASSWORD` nothing is asked (pages show a warning; `request.state.password_set`
is False). With it, every request needs one of:

* the session cookie `cd_session` (set by `POST /login`; signed with itsdangerous, HttpOnly,
  SameSite=Lax, Secure when the request came over HTTPS, also when nginx/RunPod say so with
  `X-Forwarded-Proto: https`); valid 30 days, invalid as soon as the password changes;
* `Authorization: Bearer <token>` for API clients. The token is `API_TOKEN` when set, else derived
  from the password (HMAC-SHA256), so it survives restarts. An authenticated client reads it at
  `GET /api/auth/token` (the Settings page shows it).

Public without login: `/login`, `/logout`, `/health`, `/health/ready` (reduced detail),
`/auth/verify`, `/static/*`. Anything else unauthenticated gets 401 in the JSON error shape with
`WWW-Authenticate: Bearer` (API, htmx and non-HTML clients; htmx also gets `HX-Redirect` to the
login page), or a 303 to `/login?next=<path>` (a browser asking for a page). WebSockets are checked
before they are accepted and refused with HTTP 401 (close code 4401 where the server cannot send
an HTTP answer); a cookie-authenticated WebSocket must also come from our own origin (1008
otherwise).

CSRF (what the UI must send). Cookie-authenticated requests with an unsafe method (POST, PUT,
PATCH, DELETE) must carry the header `X-CSRF-Token: <token>`. The token is in the readable cookie
`cd_csrf` (set with the session) and in `request.state.csrf_token` for templates, e.g.
`<meta name="csrf-token" content="{{ request.state.csrf_token }}">` then
`hx-headers='{"X-CSRF-Token": "..."}'` on `<body>`, or read `document.cookie` for fetch. It is an
HMAC of the session id, so a cookie planted by a sibling subdomain cannot forge it. A plain HTML
form without the header passes when its `Origin` header is our own origin (browsers send it on
every POST). Any unsafe request whose `Origin` is foreign (not this host, not `CORS_ORIGINS`) is
refused with 403, with or without a password. Bearer-authenticated requests need no CSRF token.

Login attempts are limited per client address (the direct peer, or `X-Real-IP` /
the last `X-Forwarded-For` hop when the peer is loopback, i.e. nginx): after 5 failures within
60 s the next ones get 429 with `Retry-After`. Wrong Bearer tokens count as failures too.
Every secret comparison uses `hmac.compare_digest`; secrets never appear in responses other than
`/api/auth/token`, nor in logs or error pages.

For templates (the UI engineer's pages): `request.state.password_set` (bool),
`request.state.auth_method` (`"open"`, `"session"` or `"token"`), `request.state.csrf_token`
(str or None). `deps.AuthInfoDep` gives the same as a dependency.

nginx (`auth_request`): `GET /auth/verify` answers 204 when the cookie or Bearer token is valid
(or no password is set) and 401 otherwise; 403 when nginx passes `X-Original-Method` with an
unsafe method and the request's `Origin` is foreign (ComfyUI has no CSRF protection of its own,
and another pod's `*.proxy.runpod.net` page counts as same-site for SameSite=Lax). nginx should
pass `Host`, `Origin`, `Cookie`, `Authorization` and `X-Original-Method $request_method`.
With `X-Auth-Scope: dashboard-api` (nginx's own route for `/api/comfyui/` on the dashboard's port;
plus `X-Original-Upgrade $http_upgrade` and the client's `X-CSRF-Token`) it refuses exactly what
this middleware refuses on that path: CSRF for cookie sessions, the WebSocket Origin check, bad
tokens. nginx then replays a refused request to the dashboard, whose middleware gives the answer
(401/403 JSON, or 429 after repeated bad tokens), so both paths answer alike.
On the ComfyUI port, nginx also routes `/login`, `/logout`, `/auth/verify` and
`/comfyui-unavailable` to the dashboard; every URL here is host-relative, so the same login
works under either host.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from .errors import error_payload, error_responses

if TYPE_CHECKING:  # jinja2 is imported on the first page that needs it, not at start-up
    from fastapi.templating import Jinja2Templates

SESSION_COOKIE = "cd_session"
CSRF_COOKIE = "cd_csrf"
CSRF_HEADER = "x-csrf-token"
#: nginx sets `X-Auth-Scope: dashboard-api` on its auth_request for `/api/comfyui/` on the
#: dashboard's port (overwriting whatever a client sent there); /auth/verify then also applies the
#: middleware's rule. It only ever adds checks, so a client sending it gains nothing.
SCOPE_HEADER = "x-auth-scope"
API_SCOPE = "dashboard-api"
SESSION_MAX_AGE = 30 * 24 * 3600
PUBLIC_EXACT = frozenset({"/login", "/logout", "/health", "/health/ready", "/auth/verify"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TEMPLATES_DIR = Path(__file__).parent / "templates"


def _hmac(key: str, label: str) -> str:
    return hmac.new(key.encode(), label.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    method: str  # open | session | token | none
    csrf_token: str | None = None
    bad_token: bool = False


class LoginLimiter:
    """At most `max_failures` failed attempts per client within `window` seconds."""

    def __init__(
        self, max_failures: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self._clock()
        q = self._fails.get(client)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        if not q:
            self._fails.pop(client, None)
        return q

    def retry_after(self, client: str) -> int:
        """0 when the client may try now, else the seconds to wait."""
        q = self._recent(client)
        if len(q) < self.max_failures:
            return 0
        return max(1, int(self.window - (self._clock() - q[0]) + 0.999))

    def failed(self, client: str) -> None:
        if len(self._fails) > 10_000:  # bound memory under a flood of addresses
            self._fails.clear()
        self._recent(client)
        self._fails.setdefault(client, deque()).append(self._clock())

    def succeeded(self, client: str) -> None:
        self._fails.pop(client, None)


class Auth:
    """The secrets and checks of one app (built from the settings)."""

    def __init__(self, settings: Settings, limiter: LoginLimiter | None = None) -> None:
        password = settings.access_password.get()
        self.enabled = bool(password)
        self._password = password.encode()
        if self.enabled:
            self._secret = _hmac(password, "comfyui-docker/session/v1")
            token = settings.api_token.get() or _hmac(password, "comfyui-docker/api-token/v1")[:40]
        else:
            self._secret = secrets.token_hex(32)
            token = ""
        self._token = token.encode()
        self._serializer = URLSafeTimedSerializer(self._secret, salt="cd-session")
        self.limiter = limiter or LoginLimiter()
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in settings.cors_origins)

    # ---- secrets ------------------------------------------------------------
    def api_token(self) -> str | None:
        return self._token.decode() if self.enabled else None

    def check_password(self, candidate: str) -> bool:
        return self.enabled and hmac.compare_digest(candidate.encode(), self._password)

    def check_token(self, candidate: str) -> bool:
        return self.enabled and hmac.compare_digest(candidate.encode(), self._token)

    def new_session(self) -> tuple[str, str]:
        """(cookie value, csrf token) of a fresh session."""
        sid = secrets.token_hex(16)
        return self._serializer.dumps({"sid": sid}), self.csrf_for(sid)

    def session_id(self, cookie: str) -> str | None:
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        return sid if isinstance(sid, str) else None

    def csrf_for(self, sid: str) -> str:
        return _hmac(self._secret, "csrf:" + sid)[:32]

    # ---- per request ----------------------------------------------------------
    def authenticate(self, headers: dict[str, str]) -> AuthResult:
        if not self.enabled:
            return AuthResult(True, "open")
        authz = headers.get("authorization", "")
        if authz[:7].lower() == "bearer ":
            if self.check_token(authz[7:].strip()):
                return AuthResult(True, "token")
            return AuthResult(False, "none", bad_token=True)
        raw = headers.get("cookie")
        if raw:
            cookie = cookie_parser(raw).get(SESSION_COOKIE)
            if cookie:
                sid = self.session_id(cookie)
                if sid is not None:
                    return AuthResult(True, "session", csrf_token=self.csrf_for(sid))
        return AuthResult(False, "none")

    def same_origin(self, origin: str, headers: dict[str, str]) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.cors_origins:
            return True
        parts = urlsplit(origin)
        if not parts.scheme or not parts.netloc:
            return False
        netloc = _norm_netloc(parts.netloc, parts.scheme)
        for name in ("host", "x-forwarded-host"):
            value = headers.get(name)
            if not value:
                continue
            value = value.split(",")[0].strip().lower()
            if netloc in (_norm_netloc(value, parts.scheme), _norm_netloc(value, "http")):
                return True
            # nginx may pass the host without the public port
            if ":" not in value and netloc.split(":")[0] == value:
                return True
        return False


def csrf_ok(auth: Auth, headers: dict[str, str], result: AuthResult, origin: str | None) -> bool:
    """A cookie session's change passes with the right X-CSRF-Token or our own Origin."""
    sent = headers.get(CSRF_HEADER)
    if sent and result.csrf_token and hmac.compare_digest(sent.encode(), result.csrf_token.encode()):
        return True
    return bool(origin) and origin != "null" and auth.same_origin(origin or "", headers)


def api_refusal(
    auth: Auth, headers: dict[str, str], method: str, *, websocket: bool
) -> tuple[int, str, str] | None:
    """(status, code, message) when `AuthMiddleware` would refuse this request to a protected
    path such as `/api/comfyui/*`, else None. The same checks in the same order (for /auth/verify
    when nginx serves that path itself); 429 is left to the middleware (nginx replays refusals)."""
    result = auth.authenticate(headers)
    origin = headers.get("origin")
    if websocket:
        if not result.ok:
            return 401, "unauthorized", "login required"
        if result.method in ("session", "open") and origin and not auth.same_origin(origin, headers):
            return 403, "csrf_failed", "cross-site WebSocket refused"
        return None
    if method not in SAFE_METHODS and result.method != "token":
        if origin and origin != "null" and not auth.same_origin(origin, headers):
            return 403, "csrf_failed", "cross-site request refused"
        if result.method == "session" and not csrf_ok(auth, headers, result, origin):
            return 403, "csrf_failed", "missing or wrong CSRF token"
    if result.ok:
        return None
    return 401, "unauthorized", "login required"


def _norm_netloc(netloc: str, scheme: str) -> str:
    default = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def header_dict(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def client_ip(scope: Scope, headers: dict[str, str]) -> str:
    peer = (scope.get("client") or ("unknown", 0))[0]
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        loopback = peer in ("testclient", "unknown")
    if loopback:
        real = headers.get("x-real-ip", "").strip()
        if real:
            return real
        fwd = headers.get("x-forwarded-for", "")
        if fwd:
            return fwd.split(",")[-1].strip() or peer
    return str(peer)


def is_https(scope: Scope, headers: dict[str, str]) -> bool:
    if scope.get("scheme") in ("https", "wss"):
        return True
    return headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() in ("https", "wss")


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else becomes `/`."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c in "\\" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def is_public(path: str) -> bool:
    return path in PUBLIC_EXACT or path.startswith(PUBLIC_PREFIXES)


class AuthMiddleware:
    """Pure ASGI: authenticate HTTP and WebSocket scopes before any route runs."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope["path"] == "/health":
            await self.app(scope, receive, send)  # liveness: public, polled often, nothing to check
            return
        headers = header_dict(scope)
        result = self.auth.authenticate(headers)
        state = scope.setdefault("state", {})
        state["password_set"] = self.auth.enabled
        state["auth_method"] = result.method
        state["csrf_token"] = result.csrf_token
        path: str = scope["path"]
        if kind == "websocket":
            await self._websocket(scope, receive, send, headers, result)
            return
        method = scope["method"]
        if method not in SAFE_METHODS and result.method != "token":
            origin = headers.get("origin")
            if origin and origin != "null" and not self.auth.same_origin(origin, headers):
                await _json(
                    scope,
                    receive,
                    send,
                    403,
                    "cross-site request refused",
                    "csrf_failed",
                    "send the request from the dashboard's own page",
                )
                return
            if (
                result.method == "session"
                and not is_public(path)
                and not self._csrf_ok(headers, result, origin)
            ):
                await _json(
                    scope,
                    receive,
                    send,
                    403,
                    "missing or wrong CSRF token",
                    "csrf_failed",
                    "send the X-CSRF-Token header with the value of the cd_csrf cookie",
                )
                return
        if result.ok or is_public(path):
            await self.app(scope, receive, send)
            return
        ip = client_ip(scope, headers)
        if result.bad_token:
            wait = self.auth.limiter.retry_after(ip)
            if wait:
                await _json(
                    scope,
                    receive,
                    send,
                    429,
                    "too many failed attempts",
                    "rate_limited",
                    f"wait {wait} s",
                    {"retry-after": str(wait)},
                )
                return
            self.auth.limiter.failed(ip)
        await self._refuse(scope, receive, send, headers, path)

    def _csrf_ok(self, headers: dict[str, str], result: AuthResult, origin: str | None) -> bool:
        return csrf_ok(self.auth, headers, result, origin)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], path: str
    ) -> None:
        qs = scope.get("query_string", b"").decode("latin-1")
        target = path + ("?" + qs if qs else "")
        login = "/login?next=" + quote(target, safe="/")
        accept = headers.get("accept", "")
        page = (
            scope["method"] in ("GET", "HEAD")
            and not path.startswith("/api/")
            and "text/html" in accept
            and "hx-request" not in headers
        )
        if page:
            response: Response = RedirectResponse(login, status_code=303)
        else:
            extra = {"www-authenticate": 'Bearer realm="comfyui-docker"'}
            if "hx-request" in headers:
                extra["hx-redirect"] = login
            response = JSONResponse(
                error_payload(401, "login required", hint="log in at /login or send a Bearer token"),
                status_code=401,
                headers=extra,
            )
        await response(scope, receive, send)

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], result: AuthResult
    ) -> None:
        if not result.ok:
            await deny_websocket(scope, send, 401, "login required", code=4401)
            return
        origin = headers.get("origin")
        if result.method in ("session", "open") and origin and not self.auth.same_origin(origin, headers):
            await deny_websocket(scope, send, 403, "cross-site WebSocket refused", code=1008)
            return
        await self.app(scope, receive, send)


async def deny_websocket(scope: Scope, send: Send, status: int, message: str, *, code: int) -> None:
    """Refuse a WebSocket before accepting: an HTTP answer where the server supports it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(error_payload(status, message)).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": code, "reason": message})


async def _json(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    code: str,
    hint: str,
    headers: dict[str, str] | None = None,
) -> None:
    await JSONResponse(error_payload(status, message, code=code, hint=hint), status, headers)(
        scope, receive, send
    )


# ---- routes ---------------------------------------------------------------------------------

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
