"""The nginx in front of the dashboard and ComfyUI: its configuration, rendered from the settings.

    public DASHBOARD_PORT ──► dashboard  127.0.0.1:DASHBOARD_INTERNAL_PORT (does its own login)
         /api/comfyui/*   ──► ComfyUI    by nginx itself, one hop (/api/comfyui/ws: its WebSocket)
    public COMFYUI_PORT   ──► ComfyUI    127.0.0.1:COMFYUI_INTERNAL_PORT
                              guarded by `auth_request` to the dashboard's GET /auth/verify (the
                              login with ACCESS_PASSWORD; cross-site changes and WebSockets, and
                              unknown host names without it); /login, /logout, /auth/verify,
                              /static/ and /comfyui-unavailable on that host go to the dashboard
                              (each RunPod port is its own subdomain, so the login cookie is per
                              port). Our cookies and the Authorization header never reach ComfyUI.

nginx sets X-Real-IP and X-Forwarded-For to its own `$remote_addr` on every request (a client's
values are overwritten, never appended to): the dashboard counts failed logins by that address.
`/login` takes at most 8 KiB (413 in the dashboard's JSON shape). ComfyUI's pages carry
`X-Frame-Options: DENY` and `frame-ancestors 'none'`.

With one ComfyUI per GPU (COMFYUI_GPUS), `/gpu/<n>/` on COMFYUI_PORT is GPU n's ComfyUI (its own
page, API and WebSocket: ComfyUI's page asks for everything relative to where it was opened),
behind the same `auth_request` and rules as `/`, which is the first instance's; the raw path
after the prefix goes as the client encoded it. `/api/comfyui/*` on the dashboard's port is then
left to the dashboard's proxy, which spreads prompts and merges queues and sockets (fanout.py).

While ComfyUI is down (nginx sees 502/503/504) its port answers 503 with the dashboard's
GET /comfyui-unavailable page (state and log tail) instead of a bare error page.

`/api/comfyui/<rest>` on the dashboard's port is served by nginx (the dashboard's Python proxy in
web/proxy.py serves it only without nginx, e.g. `make run`): ComfyUI gets `/<rest>` with the path
and query exactly as the client encoded them; streamed both ways. Who may is the dashboard's
middleware rule, asked through `auth_request` to /auth/verify with `X-Auth-Scope: dashboard-api`
(Bearer token; session cookie, plus the CSRF token for changes; the WebSocket Origin check; with
or without a password). Our credentials are not forwarded: Authorization and X-CSRF-Token are
dropped and cd_session/cd_csrf cut out of the Cookie header; Origin and Sec-Fetch-Site, checked
here, are dropped too (ComfyUI refuses an Origin other than a loopback Host). A refused request
and one whose raw URI nginx cannot cut are replayed to the dashboard, so the answer is its own
(401/403/429 JSON); so is a GET or HEAD that ComfyUI does not answer (502/504: 503 JSON with
ComfyUI's state). Other methods may have had part of their body read by then, which nginx cannot
send twice: nginx answers them 503 in the same JSON shape itself.

The config is a template file beside this module (nginx.conf.j2, package data); the directive
blocks and JSON bodies it repeats are filled in from here. `write_config` renders the file into a
run folder outside the volume (several pods may share one
volume); access and error logs go to `workspace/logs`. Every path nginx writes (pid, temp
folders) is in the run folder, so a normal user can run it too: `nginx -p RUN -c CONF -e stderr`.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from ..errors import AppError
from ..instance import Instance
from ..services import Services
from ..settings import Settings
from ..supervisor import ProcessSpec, Service, Supervisor, Timings
from ..supervisor.probes import tcp_probe
from ..workspace import Workspace

CONF_NAME = "nginx.conf"
ACCESS_LOG = "nginx-access.log"
ERROR_LOG = "nginx-error.log"
MAX_BODY = "64g"  # model uploads of tens of GB; the body is streamed, never spooled to disk
LOGIN_MAX_BODY = "8k"  # the login form (the dashboard refuses more too: web/body.py)
READ_TIMEOUT_S = 3600  # a generation or a long download may keep a request open that long
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
_SEARCH = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class NginxError(AppError):
    code = "nginx_error"


@dataclass(frozen=True)
class NginxLayout:
    """Where the rendered config puts things; handy for tests and the supervisor."""

    run_dir: Path
    conf: Path
    pid: Path
    access_log: Path
    error_log: Path


def default_run_dir(settings: Settings) -> Path:
    """A folder on the container's own disk (not the shared volume) for the config, pid and temp files.

    Keyed by the public dashboard port, so two runtimes on one machine (tests, a laptop) never
    share a pid file or temp folders.
    """
    return Path(tempfile.gettempdir()) / "comfyui-docker" / f"nginx-{settings.dashboard_port}"


def _worker_user() -> str:
    """The `user` line: only meaningful (and only allowed quietly) when the master runs as root."""
    if os.geteuid() != 0:
        return ""
    for user, group in (("www-data", "www-data"), ("nobody", "nogroup"), ("nobody", "nobody")):
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
        except KeyError:
            continue
        return f"user {user} {group};"
    return "user root root;"


#: The config's template (package data), rendered by `render` with Jinja; read on first use.
TEMPLATE = Path(__file__).with_name("nginx.conf.j2")


# The client's address is nginx's own $remote_addr, set (never appended to) on every request:
# the dashboard counts failed logins by X-Real-IP and believes no header a client sent.
_FORWARD = (
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "proxy_set_header X-Forwarded-Proto $forwarded_proto;",
    "proxy_set_header X-Forwarded-Host $http_host;",
)
_UPGRADE = (
    "proxy_set_header Upgrade $http_upgrade;",
    "proxy_set_header Connection $connection_upgrade;",
)
# ComfyUI's API on the dashboard's port: our credentials stay here (as web/proxy.py does), and
# so do the browser's Origin and Sec-Fetch-Site, which /auth/verify has checked: ComfyUI refuses
# an Origin other than its Host when that Host is a loopback address (localhost:8080 here).
_COMFYUI_API = (
    'proxy_set_header Authorization "";',
    'proxy_set_header X-CSRF-Token "";',
    "proxy_set_header Cookie $cd_cookie;",
    'proxy_set_header Origin "";',
    'proxy_set_header Sec-Fetch-Site "";',
)
# How nginx buffers ComfyUI's answers (that route, and ComfyUI's own port). At most 2 MiB read
# ahead per response, never spooled to disk, so memory stays flat for any file size; data still
# goes out as it arrives.
# `bench/api.py --only proxy --nginx-buffering ...` on 2 shared cores, ratio to ComfyUI direct, in
# 7 interleaved run pairs: this 0.84 median (0.82-0.91), +1 MiB worker RSS; 8 x 1m also 0.84
# (0.73-1.02), +9 MiB. Other runs: unbuffered with 1m 0.79 median of 8, with 256k 0.75 of 7, with
# nginx's default 8k 0.37 (ComfyUI's port had that).
API_BUFFERING = (
    "proxy_buffering on;",
    "proxy_buffer_size 256k;",
    "proxy_buffers 8 256k;",
    "proxy_busy_buffers_size 512k;",
    "proxy_max_temp_file_size 0;",
)
# What /auth/verify needs to apply the middleware's rule for /api/comfyui/* (web/auth/).
_AUTH_API = ("proxy_set_header X-Auth-Scope dashboard-api;",)
# ComfyUI's own port: the port's rule, whatever scope header a client sent.
_PORT_AUTH = ('proxy_set_header X-Auth-Scope "";',)
# ComfyUI's own port: our credentials stay here too (ComfyUI and its custom nodes never see the
# session cookie, the CSRF token or the Bearer token).
_COMFYUI_PORT = (
    'proxy_set_header Authorization "";',
    'proxy_set_header X-CSRF-Token "";',
    "proxy_set_header Cookie $cd_cookie;",
)
# No other site may frame ComfyUI's page (the dashboard sends the same itself).
_FRAME = (
    "add_header X-Frame-Options DENY always;",
    "add_header Content-Security-Policy \"frame-ancestors 'none'\" always;",
)
# For requests the dashboard answers in place of the original (auth check, "ComfyUI is down"):
# no body, no upgrade, the original URI, method and Upgrade header in headers.
_NO_BODY = (
    'proxy_set_header Upgrade "";',
    'proxy_set_header Connection "";',
    'proxy_set_header Content-Length "";',
    "proxy_set_header X-Original-URI $request_uri;",
    "proxy_set_header X-Original-Method $request_method;",
    "proxy_set_header X-Original-Upgrade $http_upgrade;",
    "proxy_pass_request_body off;",
)


# The JSON error shape of the dashboard (web/errors.py), for API clients refused on the ComfyUI port.
_UNAUTHORIZED = json.dumps(
    {
        "error": {
            "code": "unauthorized",
            "message": "login required",
            "hint": "log in at /login or send Authorization: Bearer <API token>",
        }
    },
    separators=(",", ":"),
)


_REFUSED = json.dumps(
    {
        "error": {
            "code": "forbidden",
            "message": "refused: a change or WebSocket from another site, "
            "or a host name this pod does not answer",
            "hint": "use ComfyUI from its own page; without ACCESS_PASSWORD open it at its IP address, "
            "localhost or its RunPod URL",
        }
    },
    separators=(",", ":"),
)
_TOO_LARGE = json.dumps(
    {
        "error": {
            "code": "payload_too_large",
            "message": "the login form is larger than 8 KiB",
            "hint": "the form takes a password of at most 1024 characters",
        }
    },
    separators=(",", ":"),
)


# What the Python proxy says when ComfyUI does not answer, for the requests nginx cannot replay.
_COMFYUI_DOWN = json.dumps(
    {
        "error": {
            "code": "service_unavailable",
            "message": "ComfyUI is not answering",
            "hint": "it may be starting or restarting; try again in a few seconds "
            "(GET /api/service/comfyui says its state)",
            "details": {"state": "unreachable"},
        }
    },
    separators=(",", ":"),
)


def _block(*lines: str) -> str:
    return "\n".join(" " * 12 + line for line in lines)


def render(
    settings: Settings,
    workspace: Workspace,
    run_dir: Path,
    *,
    listen_host: str = "",
    user_line: str | None = None,
    instances: Sequence[Instance] = (),
) -> str:
    """The config text. `listen_host` empty binds every address (the public ports). With several
    `instances` (one ComfyUI per GPU), `/` on ComfyUI's port is the first one's and `/gpu/<n>/`
    GPU n's; `/api/comfyui/` is left to the dashboard, which spreads the work over them."""
    per_gpu = [(i.gpu, i.port) for i in instances if i.gpu is not None] if len(instances) > 1 else []
    upstream = instances[0].port if instances else settings.comfyui_internal_port
    if settings.dashboard_internal_port in (settings.dashboard_port, settings.comfyui_port):
        raise NginxError(
            f"the dashboard's internal port {settings.dashboard_internal_port} is also a public port",
            hint="set DASHBOARD_INTERNAL_PORT to a port of its own",
        )
    env = Environment(
        autoescape=False,  # noqa: S701 - an nginx config, not HTML
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        user_line=_worker_user() if user_line is None else user_line,
        run=_quote(run_dir),
        error_log=_quote(workspace.logs / ERROR_LOG),
        access_log=_quote(workspace.logs / ACCESS_LOG),
        max_body=MAX_BODY,
        read_timeout=READ_TIMEOUT_S,
        listen=f"{listen_host}:" if listen_host else "",
        dashboard_port=settings.dashboard_port,
        comfyui_port=settings.comfyui_port,
        dashboard_upstream=settings.dashboard_internal_port,
        comfyui_upstream=upstream,
        per_gpu=per_gpu,
        password=settings.password_set,
        unauthorized_json=_UNAUTHORIZED,
        refused_json=_REFUSED,
        too_large_json=_TOO_LARGE,
        login_max_body=LOGIN_MAX_BODY,
        frame_headers=_block(*_FRAME),
        comfyui_down_json=_COMFYUI_DOWN,
        fwd=_block(*_FORWARD),
        fwd_upgrade=_block(*_FORWARD, *_UPGRADE),
        fwd_no_body=_block(*_FORWARD, *_NO_BODY),
        fwd_comfyui=_block(*_FORWARD, *_UPGRADE, *_COMFYUI_PORT, *API_BUFFERING),
        fwd_port_auth=_block(*_FORWARD, *_NO_BODY, *_PORT_AUTH),
        fwd_comfyui_api=_block(*_FORWARD, *_UPGRADE, *_COMFYUI_API, *API_BUFFERING),
        fwd_auth_api=_block(*_FORWARD, *_NO_BODY, *_AUTH_API),
    )


def _quote(path: Path) -> str:
    text = str(path)
    if any(ch in text for ch in " ;{}\"'\\$"):
        raise NginxError(
            f"{text!r} cannot be written into an nginx config",
            hint="use a path without spaces, quotes, braces, ';' or '$'",
        )
    return text


def layout(run_dir: Path, workspace: Workspace) -> NginxLayout:
    return NginxLayout(
        run_dir=run_dir,
        conf=run_dir / CONF_NAME,
        pid=run_dir / "nginx.pid",
        access_log=workspace.logs / ACCESS_LOG,
        error_log=workspace.logs / ERROR_LOG,
    )


def public_listen_host(settings: Settings) -> str:
    """Every address (the image's case) unless DASHBOARD_HOST names one, e.g. 127.0.0.1 on a laptop."""
    host = settings.dashboard_host.strip()
    if host in ("", "0.0.0.0", "::", "[::]", "*"):
        return ""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def write_config(
    settings: Settings,
    workspace: Workspace,
    run_dir: Path | None = None,
    *,
    listen_host: str | None = None,
    instances: Sequence[Instance] = (),
) -> Path:
    """Render the config into `run_dir` (default: a folder in the system temp dir); return its path.

    The public ports listen on every address, or on DASHBOARD_HOST when that names one address.
    """
    run_dir = default_run_dir(settings) if run_dir is None else run_dir
    host = public_listen_host(settings) if listen_host is None else listen_host
    text = render(settings, workspace, run_dir, listen_host=host, instances=instances)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in TEMP_DIRS:
        (run_dir / name).mkdir(exist_ok=True)
    workspace.logs.mkdir(parents=True, exist_ok=True)
    conf = run_dir / CONF_NAME
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, conf)
    return conf


def find_binary() -> str:
    """The nginx executable (PATH first, then the usual sbin folders a normal user's PATH lacks)."""
    found = shutil.which("nginx")
    if found:
        return found
    for cand in _SEARCH:
        if os.access(cand, os.X_OK):
            return cand
    raise NginxError(
        "nginx is not installed",
        hint="install it (apt-get install nginx) or set ENABLE_NGINX=false",
    )


def argv(conf_path: Path, binary: str | None = None) -> list[str]:
    """The command the supervisor runs: foreground (`daemon off` is in the file), errors on stderr."""
    return [binary or find_binary(), "-p", f"{conf_path.parent}/", "-c", str(conf_path), "-e", "stderr"]


def check(conf_path: Path, binary: str | None = None, *, timeout: float = 15.0) -> None:
    """`nginx -t` on the rendered file; raise NginxError with nginx's own words if it is refused."""
    cmd = [*argv(conf_path, binary), "-t", "-q"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise NginxError("nginx -t did not finish", hint="check the nginx binary") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        emerg = [line for line in lines if "[emerg]" in line or "[alert]" in line]
        detail = (emerg or lines or [f"exit {proc.returncode}"])[0]
        raise NginxError(f"nginx refused the config: {detail}", hint=f"see {conf_path}")


TIMINGS = Timings(start_grace=10, ready_timeout=15, retries=5, stop_sigint=2.0, stop_sigterm=2.0)


def service(services: Services, supervisor: Supervisor) -> Service:
    """nginx under the same supervision, added to `supervisor` (not started): its config written
    and checked with `nginx -t` first (NginxError with nginx's words otherwise)."""
    settings = services.settings
    conf = write_config(settings, services.workspace, instances=services.instances)
    check(conf)
    spec = ProcessSpec(
        name="nginx",
        argv=argv(conf),
        identity="nginx",
        probe=tcp_probe("127.0.0.1", settings.dashboard_port),
        timings=TIMINGS,
    )
    return supervisor.add(Service(spec, bus=services.bus, log_dir=services.workspace.logs))
