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

`write_config` renders the file into a run folder outside the volume (several pods may share one
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
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from .errors import AppError
from .settings import Settings
from .workspace import Workspace

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


_TEMPLATE = r"""# Written by comfyui-docker at every start; edits are overwritten.
# Public {{ dashboard_port }} -> dashboard 127.0.0.1:{{ dashboard_upstream }};
# public {{ comfyui_port }} -> ComfyUI 127.0.0.1:{{ comfyui_upstream }}
# ({% if password %}login required{% else %}no ACCESS_PASSWORD: open to anyone who can reach it{% endif %}).
{{ user_line }}
daemon off;
worker_processes auto;
pid {{ run }}/nginx.pid;
error_log {{ error_log }} warn;

events {
    worker_connections 4096;
}

http {
    default_type application/octet-stream;
    server_tokens off;
    # Behind RunPod's HTTPS proxy nginx sees http and its own port: keep redirects relative.
    absolute_redirect off;
    log_format comfyui_docker '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                              '$request_time $upstream_status "$http_user_agent" $server_port';
    access_log {{ access_log }} comfyui_docker buffer=32k flush=5s;

    client_body_temp_path {{ run }}/client_body;
    proxy_temp_path {{ run }}/proxy;
    fastcgi_temp_path {{ run }}/fastcgi;
    uwsgi_temp_path {{ run }}/uwsgi;
    scgi_temp_path {{ run }}/scgi;

    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    # Uploads of several GB stream straight to the upstream; nothing is spooled to disk.
    client_max_body_size {{ max_body }};
    client_body_buffer_size 1m;
    client_body_timeout 300s;
    proxy_request_buffering off;
    # Streamed answers (event streams, downloads, previews) go out as they come.
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_connect_timeout 5s;
    proxy_read_timeout {{ read_timeout }}s;
    proxy_send_timeout {{ read_timeout }}s;
    send_timeout {{ read_timeout }}s;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
    map $http_x_forwarded_proto $forwarded_proto {
        default $http_x_forwarded_proto;
        ''      $scheme;
    }
    # A browser asking for a page gets the login page; API clients and WebSockets get 401.
    map "$request_method:$http_accept" $wants_html {
        default                 0;
        ~*^(GET|HEAD):.*text/html  1;
    }
    # The path of the refused request, for the login page's `next` (query left out: nginx
    # cannot escape it, and an unescaped `&` would cut it anyway).
    map $request_uri $login_next {
        default               /;
        ~^(?<p>/[^?&#]*)      $p;
    }

    # /api/comfyui/<rest> on the dashboard's port is ComfyUI's /<rest>: path and query exactly as
    # the client encoded them (as web/proxy.py's upstream_url). Empty when the raw URI is spelled
    # differently (percent-encoded prefix, dot segments): the dashboard's own route takes those.
    map $request_uri $cd_comfyui_uri {
        default                  "";
        "~^/api/comfyui(/.*)$"   $1;
    }
    # Our cookies stay with us: cd_session, cd_csrf and cd_device are cut out of the Cookie header
    # sent to ComfyUI (one per pass, three passes); should more remain, ComfyUI gets no Cookie
    # header at all.
    map $http_cookie $cd_cookie_1 {
        default                                                           $http_cookie;
        "~^(.*?)(?:^|;)\s*(?:cd_session|cd_csrf|cd_device)\s*=[^;]*(.*)$"  $1$2;
    }
    map $cd_cookie_1 $cd_cookie_2 {
        default                                                           $cd_cookie_1;
        "~^(.*?)(?:^|;)\s*(?:cd_session|cd_csrf|cd_device)\s*=[^;]*(.*)$"  $1$2;
    }
    map $cd_cookie_2 $cd_cookie_3 {
        default                                                           $cd_cookie_2;
        "~^(.*?)(?:^|;)\s*(?:cd_session|cd_csrf|cd_device)\s*=[^;]*(.*)$"  $1$2;
    }
    map $cd_cookie_3 $cd_cookie {
        default                                             "";
        "~(?:^|;)\s*(?:cd_session|cd_csrf|cd_device)\s*="   "";
        "~^[;\s]*(.*?)[;\s]*$"                             $1;
    }

    upstream cd_dashboard {
        server 127.0.0.1:{{ dashboard_upstream }};
        keepalive 16;
    }
    upstream cd_comfyui {
        server 127.0.0.1:{{ comfyui_upstream }};
        keepalive 16;
    }
    # ---- dashboard ------------------------------------------------------------
    server {
        listen {{ listen }}{{ dashboard_port }};
        server_name _;

        location / {
            proxy_pass http://cd_dashboard;
{{ fwd_upgrade }}
        }
        # The login form is a few hundred bytes: nothing bigger is read (or spooled).
        location = /login {
            client_max_body_size {{ login_max_body }};
            error_page 413 = @cd_too_large;
            proxy_pass http://cd_dashboard;
{{ fwd }}
        }
        location @cd_too_large {
            default_type application/json;
            return 413 '{{ too_large_json }}\n';
        }
        # ComfyUI's API and WebSocket under the dashboard's host, carried by nginx itself (one
        # hop, not two). The dashboard decides who may (its middleware's rule, via auth_request);
        # refusals (no body read yet) are replayed to the dashboard, whose own route answers.
        location /api/comfyui/ {
            auth_request /_cd_auth_api;
            error_page 401 403 418 500 = @cd_api_dashboard;
            error_page 502 504 = @cd_api_down;
            recursive_error_pages on;
            if ($cd_comfyui_uri = "") {
                return 418;
            }
            proxy_pass http://cd_comfyui$cd_comfyui_uri;
{{ fwd_comfyui_api }}
        }
        location = /_cd_auth_api {
            internal;
            proxy_pass http://cd_dashboard/auth/verify;
{{ fwd_auth_api }}
        }
        location @cd_api_dashboard {
            proxy_pass http://cd_dashboard$request_uri;
{{ fwd_upgrade }}
        }
        # ComfyUI did not answer. A GET or HEAD is replayed to the dashboard, whose 503 says
        # ComfyUI's state; a request with a body may be partly read already, and nginx cannot
        # send it twice: it gets the same error shape from here.
        location @cd_api_down {
            default_type application/json;
            if ($request_method !~ ^(GET|HEAD)$) {
                return 503 '{{ comfyui_down_json }}\n';
            }
            proxy_pass http://cd_dashboard$request_uri;
{{ fwd_upgrade }}
        }
        error_page 502 503 504 = @dashboard_down;
        location @dashboard_down {
            default_type text/plain;
            return 503 "The dashboard is starting or restarting; reload in a few seconds.\n";
        }
    }

    # ---- ComfyUI --------------------------------------------------------------
    server {
        listen {{ listen }}{{ comfyui_port }};
        server_name _;

        # Served by the dashboard on this host too: its login (the cookie is per port on
        # RunPod), its assets, and the page shown while ComfyUI is down.
        location = /login {
            client_max_body_size {{ login_max_body }};
            error_page 413 = @cd_too_large;
            proxy_pass http://cd_dashboard;
{{ fwd }}
        }
        location @cd_too_large {
            default_type application/json;
            return 413 '{{ too_large_json }}\n';
        }
        location = /logout {
            proxy_pass http://cd_dashboard;
{{ fwd }}
        }
        location = /auth/verify {
            proxy_pass http://cd_dashboard;
{{ fwd_no_body }}
        }
        location /static/ {
            proxy_pass http://cd_dashboard;
{{ fwd }}
        }
        location /comfyui-unavailable {
            proxy_pass http://cd_dashboard;
{{ fwd }}
        }
        # Every request asks the dashboard first: with a password, for the login (and, for
        # changes and WebSockets riding on the cookie, that they come from our own page);
        # without one, that the host name is one we answer (no DNS rebinding) and that nothing
        # cross-site changes anything.
        location = /_cd_auth {
            internal;
            proxy_pass http://cd_dashboard/auth/verify;
{{ fwd_port_auth }}
        }
{% if password %}
        location @cd_login {
            if ($wants_html) {
                return 302 /login?next=$login_next;
            }
            default_type application/json;
            add_header WWW-Authenticate 'Bearer realm="comfyui-docker"' always;
{{ frame_headers }}
            return 401 '{{ unauthorized_json }}\n';
        }
{% endif %}
        location @cd_refused {
            default_type application/json;
{{ frame_headers }}
            return 403 '{{ refused_json }}\n';
        }
        location / {
            auth_request /_cd_auth;
            error_page 401 = {{ '@cd_login' if password else '@cd_refused' }};
            error_page 403 = @cd_refused;
            error_page 502 503 504 =503 @comfyui_down;
            proxy_pass http://cd_comfyui;
{{ fwd_comfyui }}
{{ frame_headers }}
        }
        location @comfyui_down {
            rewrite ^ /comfyui-unavailable break;
            proxy_method GET;
            proxy_pass http://cd_dashboard;
{{ fwd_no_body }}
        }
    }
}
"""


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
) -> str:
    """The config text. `listen_host` empty binds every address (the public ports)."""
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
    return env.from_string(_TEMPLATE).render(
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
        comfyui_upstream=settings.comfyui_internal_port,
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
) -> Path:
    """Render the config into `run_dir` (default: a folder in the system temp dir); return its path.

    The public ports listen on every address, or on DASHBOARD_HOST when that names one address.
    """
    run_dir = default_run_dir(settings) if run_dir is None else run_dir
    host = public_listen_host(settings) if listen_host is None else listen_host
    text = render(settings, workspace, run_dir, listen_host=host)
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
