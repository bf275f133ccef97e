"""The login that guards every port: sessions, Bearer token, CSRF, Origin, Host, login backoff.

    policy.py      who may pass: secrets, the session and device cookies, the Origin/CSRF/Host rules
    sessions.py    the server-side session list (SQLite on the volume) and the volume's secret
    backoff.py     how fast a client may guess passwords and tokens
    middleware.py  `AuthMiddleware`: every HTTP request and WebSocket, before any route
    routes.py      /login, /logout, /auth/verify (nginx), /api/auth/status|token|sessions

Without `ACCESS_PASSWORD` nothing is asked (pages show a warning; `Auth.enabled` is False), but
only known host names are answered (localhost, IP addresses, the listen address,
`*.proxy.runpod.net`, the hosts of `CORS_ORIGINS`): a DNS-rebinding page gets 403. With a
password, every request needs one of:

* the session cookie `cd_session` (set by `POST /login`; HttpOnly, SameSite=Lax, Secure over
  HTTPS, and when nginx says so with `X-Forwarded-Proto: https`). It names a session that must
  still be listed server-side (`cache/sessions.sqlite3` on the volume): logging out ends it, and
  "log out everywhere" (`DELETE /api/auth/sessions`, on the Settings page) ends them all. It is
  signed with a key mixed from the password and the volume's secret (`config/session.key`,
  0600), so it is good only on pods that share this volume and this password; 30 days at most;
* `Authorization: Bearer <token>` for API clients. The token is `API_TOKEN` when set, else derived
  from the password (HMAC-SHA256), so it survives restarts and needs no session. An authenticated
  client reads it at `GET /api/auth/token` (the Settings page shows it).

Public without login: `/login`, `/logout`, `/health`, `/health/ready` (reduced detail),
`/auth/verify`, `/static/*`. Anything else unauthenticated gets 401 in the JSON error shape with
`WWW-Authenticate: Bearer` (API, htmx and non-HTML clients; htmx also gets `HX-Redirect` to the
login page), or a 303 to `/login?next=<path>` (a browser asking for a page). WebSockets are checked
before they are accepted and refused with HTTP 401 (close code 4401 where the server cannot send
an HTTP answer); one riding on a cookie (or on no password) must also come from our own origin
(403 / 1008 otherwise).

Cross-site requests (unsafe methods: POST, PUT, PATCH, DELETE). Bearer-authenticated requests
pass. Any other request whose `Origin` is foreign (not this host, not `CORS_ORIGINS`) is refused
with 403, with or without a password, and `Origin: null` counts as foreign (a sandboxed page, or
a request that a redirect from another site turned into a "null" origin). A cookie session must
also prove the request is first-party: on the dashboard's routes with the header
`X-CSRF-Token: <token>` (the readable cookie `cd_csrf`, an HMAC of the session id; templates
get it from `request_auth(scope).csrf_token`) or its own `Origin` (a plain HTML form); on
ComfyUI's port, where no CSRF token exists, with its own `Origin`, or no `Origin` and
`Sec-Fetch-Site: same-origin` (or `none`). `/login` and `/logout` only refuse foreign origins.

Login attempts and wrong Bearer tokens go through `backoff.LoginBackoff`: per client address
(nginx's `X-Real-IP` behind nginx, the socket peer otherwise; client-sent forwarding headers are
never read), exponential after 5 failures, plus a cap on failures from all addresses together; a
browser that logged in here before carries a signed device cookie (`cd_device`) and is never held
up by others' failures. The login form is `application/x-www-form-urlencoded` of at most 8 KiB
(web/body.py; nginx caps it too). Passwords and tokens are compared as SHA-256 digests with
`hmac.compare_digest` (no length leak); secrets never appear in responses other than
`/api/auth/token`, nor in logs or error pages.

For routes and templates: `request_auth(scope)` is the middleware's `AuthResult` for this request
(`method`: `"open"`, `"session"` or `"token"`; `csrf_token`: str or None; `session_id`).

nginx (`auth_request`): `GET /auth/verify` answers 204 when the request may pass and 401/403
otherwise. nginx passes the original headers plus `X-Original-Method $request_method` and
`X-Original-Upgrade $http_upgrade`, so the rules above (the cross-site rule for ComfyUI's port,
the WebSocket Origin check) apply on ComfyUI's port too. With `X-Auth-Scope: dashboard-api`
(nginx's own route for `/api/comfyui/` on the dashboard's port, plus the client's `X-CSRF-Token`)
it refuses exactly what this middleware refuses on that path. nginx then replays a refused request
to the dashboard, whose middleware gives the answer (401/403 JSON, or 429 after repeated bad
tokens), so both paths answer alike. On the ComfyUI port, nginx also routes `/login`, `/logout`,
`/auth/verify` and `/comfyui-unavailable` to the dashboard; every URL here is host-relative, so
the same login works under either host.
"""

from .backoff import LoginBackoff
from .middleware import AuthMiddleware, deny_websocket, request_auth
from .policy import (
    API_SCOPE,
    CSRF_COOKIE,
    CSRF_HEADER,
    DEVICE_COOKIE,
    SCOPE_HEADER,
    SESSION_COOKIE,
    Auth,
    AuthResult,
    api_token_for,
    header_dict,
    safe_next,
)
from .routes import router, templates
from .sessions import SessionStore

__all__ = [
    "API_SCOPE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "DEVICE_COOKIE",
    "SCOPE_HEADER",
    "SESSION_COOKIE",
    "Auth",
    "AuthMiddleware",
    "AuthResult",
    "LoginBackoff",
    "SessionStore",
    "api_token_for",
    "deny_websocket",
    "header_dict",
    "request_auth",
    "router",
    "safe_next",
    "templates",
]
