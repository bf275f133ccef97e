"""`AuthMiddleware`: every HTTP request and WebSocket is checked here before any route runs."""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import error_payload
from .policy import SAFE_METHODS, Auth, AuthResult, client_ip, csrf_ok, header_dict, is_public


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
