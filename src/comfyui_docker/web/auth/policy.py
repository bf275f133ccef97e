"""Who may pass: the secrets, the session cookie, the Bearer token, the Origin and CSRF rules.

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
from .backoff import LoginLimiter

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


def _hmac(key: str, label: str) -> str:
    return hmac.new(key.encode(), label.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    method: str  # open | session | token | none
    csrf_token: str | None = None
    bad_token: bool = False


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
