"""`AuthMiddleware`: every HTTP request and WebSocket is checked here before any route runs."""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import error_payload
from .policy import CROSS_SITE, SAFE_METHODS, Auth, AuthResult, Refusal, header_dict, is_public

UNKNOWN_HOST = Refusal(
    403,
    "unknown_host",
    "this address is not one the dashboard answers without a password",
    "open it at its IP address or localhost, list the origin in CORS_ORIGINS, or set ACCESS_PASSWORD",
)


#: Where the middleware leaves its verdict in the ASGI scope's state (read it with `request_auth`).
STATE_KEY = "auth_result"


def request_auth(scope: Scope) -> AuthResult | None:
    """How this request was authenticated, as the middleware found it (None where it did not run)."""
    found = scope.get("state", {}).get(STATE_KEY)
    return found if isinstance(found, AuthResult) else None


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
        if not self.auth.host_allowed(headers):
            if kind == "websocket":
                await deny_websocket(scope, send, 403, UNKNOWN_HOST.message, code=1008)
            else:
                await refuse(scope, receive, send, UNKNOWN_HOST)
            return
        result = self.auth.authenticate(headers)
        scope.setdefault("state", {})[STATE_KEY] = result
        path: str = scope["path"]
        if kind == "websocket":
            await self._websocket(scope, receive, send, headers, result)
            return
        if scope["method"] not in SAFE_METHODS:
            if is_public(path):  # /login, /logout: the password (or nothing) is what they act on
                refusal = CROSS_SITE if result.method != "token" and self.auth.foreign(headers) else None
            else:
                refusal = self.auth.change_refusal(headers, result, csrf=True)
            if refusal is not None:
                await refuse(scope, receive, send, refusal)
                return
        if result.ok or is_public(path):
            await self.app(scope, receive, send)
            return
        if result.bad_token:
            ip = self.auth.client_address(scope, headers)
            wait = self.auth.backoff.wait(ip)
            if wait:
                limited = Refusal(429, "rate_limited", "too many failed attempts", f"wait {wait} s")
                await refuse(scope, receive, send, limited, {"retry-after": str(wait)})
                return
            self.auth.backoff.failed(ip)
        await self._login_required(scope, receive, send, headers, path)

    async def _login_required(
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
        refusal = self.auth.websocket_refusal(headers, result)
        if refusal is not None:
            code = 4401 if refusal.status == 401 else 1008
            await deny_websocket(scope, send, refusal.status, refusal.message, code=code)
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


async def refuse(
    scope: Scope, receive: Receive, send: Send, refusal: Refusal, headers: dict[str, str] | None = None
) -> None:
    payload = error_payload(refusal.status, refusal.message, code=refusal.code, hint=refusal.hint)
    await JSONResponse(payload, refusal.status, headers)(scope, receive, send)
