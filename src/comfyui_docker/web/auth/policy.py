"""Who may pass: the secrets, the session cookie, the Bearer token, Origin, CSRF and Host rules.

Pure checks on headers; nothing here sends a response (middleware.py and routes.py do).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import cookie_parser
from starlette.types import Scope

from ...settings import Settings
from ...workspace import Workspace
from .backoff import LoginBackoff
from .sessions import DB_NAME, SECRET_NAME, SessionStore

SESSION_COOKIE = "cd_session"
CSRF_COOKIE = "cd_csrf"
DEVICE_COOKIE = "cd_device"
CSRF_HEADER = "x-csrf-token"
#: nginx sets `X-Auth-Scope: dashboard-api` on its auth_request for `/api/comfyui/` on the
#: dashboard's port and clears it on ComfyUI's port (overwriting whatever a client sent in both);
#: /auth/verify then applies the middleware's rule instead of the ComfyUI port's.
SCOPE_HEADER = "x-auth-scope"
API_SCOPE = "dashboard-api"
SESSION_MAX_AGE = 30 * 24 * 3600
DEVICE_MAX_AGE = 365 * 24 * 3600
PUBLIC_EXACT = frozenset({"/login", "/logout", "/health", "/health/ready", "/auth/verify"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: `Sec-Fetch-Site` values that prove a browser request came from our own page (or the user).
FIRST_PARTY_FETCH = frozenset({"same-origin", "none"})
#: RunPod's public proxy names every port `{POD_ID}-{PORT}.proxy.runpod.net`.
RUNPOD_PROXY_SUFFIX = ".proxy.runpod.net"


def derive(key: str | bytes, label: str) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, label.encode(), hashlib.sha256).hexdigest()


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def api_token_for(settings: Settings) -> str:
    """`API_TOKEN`, else one derived from the password (stable across restarts); "" without one."""
    password = settings.access_password.get()
    if not password:
        return ""
    return settings.api_token.get() or derive(password, "comfyui-docker/api-token/v1")[:40]


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    method: str  # open | session | token | none
    csrf_token: str | None = None
    bad_token: bool = False
    session_id: str | None = None


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    hint: str


CROSS_SITE = Refusal(
    403, "csrf_failed", "cross-site request refused", "send the request from the dashboard's own page"
)
NO_CSRF = Refusal(
    403,
    "csrf_failed",
    "missing or wrong CSRF token",
    "send the X-CSRF-Token header with the value of the cd_csrf cookie",
)
CROSS_SITE_WS = Refusal(403, "csrf_failed", "cross-site WebSocket refused", "open it from our own page")


class Auth:
    """The secrets and checks of one app (built from the settings)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: SessionStore | None = None,
        backoff: LoginBackoff | None = None,
    ) -> None:
        password = settings.access_password.get()
        self.enabled = bool(password)
        self._password = _digest(password)
        self._token_text = api_token_for(settings)
        self._token = _digest(self._token_text)
        if sessions is None:
            ws = Workspace(settings.workspace_root)
            sessions = SessionStore(ws.cache / DB_NAME, ws.config / SECRET_NAME, max_age=SESSION_MAX_AGE)
        self.sessions = sessions
        self.backoff = backoff or LoginBackoff()
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in settings.cors_origins)
        # Behind nginx (ENABLE_NGINX) the dashboard listens on loopback only and nginx sets
        # X-Real-IP and X-Forwarded-* on every request, overwriting what a client sent.
        self.behind_proxy = settings.enable_nginx
        self.known_hosts = _known_hosts(settings)
        self._password_text = password
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    # ---- secrets ------------------------------------------------------------
    def _signer(self, salt: str) -> URLSafeTimedSerializer:
        signer = self._serializers.get(salt)
        if signer is None:
            key = derive(self.sessions.secret(), "comfyui-docker/session/v2:" + self._password_text)
            signer = self._serializers[salt] = URLSafeTimedSerializer(key, salt=salt)
        return signer

    def api_token(self) -> str | None:
        return self._token_text if self.enabled else None

    def check_password(self, candidate: str) -> bool:
        return self.enabled and hmac.compare_digest(_digest(candidate), self._password)

    def check_token(self, candidate: str) -> bool:
        return self.enabled and hmac.compare_digest(_digest(candidate), self._token)

    def new_session(self, address: str = "") -> tuple[str, str]:
        """(cookie value, csrf token) of a fresh session, listed server-side."""
        sid = secrets.token_hex(16)
        self.sessions.add(sid, address=address)
        return self._signer("cd-session").dumps({"sid": sid}), self.csrf_for(sid)

    def session_id(self, cookie: str) -> str | None:
        """The id of a live session this cookie names (signed here, not ended), else None."""
        if not self.enabled:
            return None
        try:
            data = self._signer("cd-session").loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not self.sessions.active(sid):
            return None
        return sid

    def csrf_for(self, sid: str) -> str:
        return derive(self._signer("cd-session").secret_key, "csrf:" + sid)[:32]

    def new_device(self) -> str:
        return self._signer("cd-device").dumps({"d": secrets.token_hex(8)})

    def device_id(self, headers: dict[str, str]) -> str | None:
        """The id of a browser that logged in here before (its signed device cookie), else None."""
        raw = headers.get("cookie")
        value = cookie_parser(raw).get(DEVICE_COOKIE) if raw and self.enabled else None
        if not value:
            return None
        try:
            data = self._signer("cd-device").loads(value, max_age=DEVICE_MAX_AGE)
        except BadSignature:
            return None
        device = data.get("d") if isinstance(data, dict) else None
        return device if isinstance(device, str) else None

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
                    return AuthResult(True, "session", csrf_token=self.csrf_for(sid), session_id=sid)
        return AuthResult(False, "none")

    def same_origin(self, origin: str, headers: dict[str, str]) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.cors_origins:
            return True
        parts = urlsplit(origin)
        if not parts.scheme or not parts.netloc:
            return False
        netloc = _norm_netloc(parts.netloc, parts.scheme)
        names = ("host", "x-forwarded-host") if self.behind_proxy else ("host",)
        for name in names:
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

    def foreign(self, headers: dict[str, str]) -> bool:
        """The request names an origin that is not ours; `Origin: null` (a sandboxed page, or a
        request redirected from another site) counts as foreign."""
        origin = headers.get("origin")
        if origin is None:
            return False
        return origin.strip().lower() == "null" or not self.same_origin(origin, headers)

    def change_refusal(self, headers: dict[str, str], result: AuthResult, *, csrf: bool) -> Refusal | None:
        """Why an unsafe request (POST, PUT, PATCH, DELETE) is refused, or None when it may pass.

        Bearer tokens pass (a browser never adds one by itself). Everything else is refused with
        a foreign Origin. A cookie session must also prove the request is first-party: with `csrf`
        (the dashboard's routes) the X-CSRF-Token header or our own Origin; without (ComfyUI's
        port, which has no CSRF token) our own Origin, or no Origin and `Sec-Fetch-Site` saying
        same-origin or none.
        """
        if result.method == "token":
            return None
        if self.foreign(headers):
            return CROSS_SITE
        if result.method != "session":
            return None
        if headers.get("origin"):
            return None  # present and not foreign: our own page
        if csrf:
            sent = headers.get(CSRF_HEADER)
            token = result.csrf_token or ""
            if sent and token and hmac.compare_digest(sent.encode(), token.encode()):
                return None
            return NO_CSRF
        if headers.get("sec-fetch-site", "").strip().lower() in FIRST_PARTY_FETCH:
            return None
        return CROSS_SITE

    def websocket_refusal(self, headers: dict[str, str], result: AuthResult) -> Refusal | None:
        """A WebSocket riding on a cookie (or on no password) must come from our own page."""
        if not result.ok:
            return Refusal(401, "unauthorized", "login required", "log in at /login or send a Bearer token")
        if result.method in ("session", "open") and self.foreign(headers):
            return CROSS_SITE_WS
        return None

    def host_allowed(self, headers: dict[str, str]) -> bool:
        """Without a password only known host names may reach us (no DNS rebinding)."""
        if self.enabled:
            return True
        host = headers.get("host")
        if not host:
            return True
        name = _host_name(host)
        if name is None:
            return False
        if (
            name in self.known_hosts
            or name == "localhost"
            or name.endswith((".localhost", RUNPOD_PROXY_SUFFIX))
        ):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def client_address(self, scope: Scope, headers: dict[str, str]) -> str:
        """The address the backoff counts: nginx's X-Real-IP behind nginx, else the socket peer.

        Client-sent X-Forwarded-For / X-Real-IP are never believed: nginx overwrites X-Real-IP,
        and without nginx no header is read (uvicorn runs with proxy_headers off)."""
        if self.behind_proxy:
            real = headers.get("x-real-ip", "").strip()
            if real:
                return real[:64]
        return str((scope.get("client") or ("unknown", 0))[0])

    def is_https(self, scope: Scope, headers: dict[str, str]) -> bool:
        """Whether cookies get `Secure` (a proxy's X-Forwarded-Proto is believed: a client lying
        about it only makes its own cookie unusable over http)."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        return headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() in ("https", "wss")


def _host_name(host: str) -> str | None:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".") or None


def _known_hosts(settings: Settings) -> frozenset[str]:
    names = {"localhost"}
    bind = settings.dashboard_host.strip().strip("[]").lower()
    if bind and bind not in ("0.0.0.0", "::", "*"):
        names.add(bind)
    for origin in settings.cors_origins:
        host = urlsplit(origin.strip()).hostname
        if host:
            names.add(host.lower())
    return frozenset(names)


def _norm_netloc(netloc: str, scheme: str) -> str:
    default = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def header_dict(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


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


def api_refusal(auth: Auth, headers: dict[str, str], method: str, *, websocket: bool) -> Refusal | None:
    """What `AuthMiddleware` would refuse on a protected path such as `/api/comfyui/*`, else None:
    the same checks in the same order (for /auth/verify when nginx serves that path itself).
    429 is left to the middleware (nginx replays refusals)."""
    result = auth.authenticate(headers)
    if websocket:
        return auth.websocket_refusal(headers, result)
    if method not in SAFE_METHODS:
        refusal = auth.change_refusal(headers, result, csrf=True)
        if refusal is not None:
            return refusal
    if result.ok:
        return None
    return Refusal(401, "unauthorized", "login required", "log in at /login or send a Bearer token")
