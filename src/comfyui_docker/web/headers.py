"""Headers every dashboard answer carries, and HEAD answered on every GET route.

* No framing: `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'`
  (added to a route's own policy when it sets one), so no other page can put the dashboard in a
  frame and trick clicks out of a logged-in user. `X-Content-Type-Options: nosniff` everywhere.
  nginx adds the same on ComfyUI's port (children/nginx.py).
* `HeadAsGetMiddleware`: FastAPI routes take only the methods they name, so HEAD on a GET route
  was 405. HEAD is now answered like GET, without the body; the OpenAPI schema keeps listing GET.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_ANCESTORS = b"frame-ancestors 'none'"
PASS_THROUGH = ("/api/comfyui/",)  # ComfyUI's own answer to HEAD (often 405) is passed on as it is


def _with_frame_rule(policy: bytes) -> bytes:
    return policy if b"frame-ancestors" in policy else policy.rstrip(b"; ") + b"; " + FRAME_ANCESTORS


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                csp = [v for k, v in headers if k.lower() == b"content-security-policy"]
                headers = [(k, v) for k, v in headers if k.lower() != b"content-security-policy"]
                headers.append(
                    (b"content-security-policy", _with_frame_rule(csp[0]) if csp else FRAME_ANCESTORS)
                )
                headers.append((b"x-frame-options", b"DENY"))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)


class HeadAsGetMiddleware:
    """HEAD on a route that only takes GET is answered as GET, without the body.

    The request first goes in as HEAD (a route may take HEAD itself); only when that answers 405
    is it asked again as GET, and every body message of that
    answer goes out empty. uvicorn sends no body for HEAD anyway; this keeps other servers and
    test clients honest too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"].startswith(PASS_THROUGH):
            await self.app(scope, receive, send)
            return
        refused = False

        async def first(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, first)
        if not refused:
            return
        ended = False

        async def without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body":
                if ended:
                    return
                ended = not message.get("more_body", False)
                if not ended:
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
