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

from .backoff import LoginLimiter
from .middleware import AuthMiddleware, deny_websocket
from .policy import (
    API_SCOPE,
    CSRF_COOKIE,
    CSRF_HEADER,
    SCOPE_HEADER,
    SESSION_COOKIE,
    Auth,
    AuthResult,
    header_dict,
    safe_next,
)
from .routes import router, templates

__all__ = [
    "API_SCOPE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SCOPE_HEADER",
    "SESSION_COOKIE",
    "Auth",
    "AuthMiddleware",
    "AuthResult",
    "LoginLimiter",
    "deny_websocket",
    "header_dict",
    "router",
    "safe_next",
    "templates",
]
