"""The rendered nginx config: what it says for each setting, and that nginx itself accepts it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from image_helpers import free_port, stack_settings

from comfyui_docker.children import nginx
from comfyui_docker.instance import Instance
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace


def settings_for(tmp_path: Path, password: str) -> Settings:
    return stack_settings(
        tmp_path / "ws", dashboard_internal=free_port(), comfyui_internal=free_port(), password=password
    )


def test_comfyui_port_always_asks_the_dashboard(tmp_path: Path) -> None:
    with_pw = settings_for(tmp_path, "pw")
    text = nginx.render(with_pw, Workspace(with_pw.workspace_root), tmp_path / "run", user_line="")
    port = text[text.index("# ---- ComfyUI") :]
    assert "auth_request /_cd_auth;" in port
    assert "proxy_pass http://cd_dashboard/auth/verify;" in port
    assert "return 302 /login?next=$login_next;" in port
    assert "error_page 401 = @cd_login;" in port and "error_page 403 = @cd_refused;" in port
    without = settings_for(tmp_path, "")
    open_text = nginx.render(without, Workspace(without.workspace_root), tmp_path / "run", user_line="")
    open_port = open_text[open_text.index("# ---- ComfyUI") :]
    # without a password it asks too: known host names only, nothing cross-site
    assert "auth_request /_cd_auth;" in open_port and "@cd_login" not in open_port
    assert "error_page 401 = @cd_refused;" in open_port
    assert "no ACCESS_PASSWORD" in open_text
    assert "auth_request /_cd_auth_api;" in open_text
    for conf in (port, open_port):
        auth = location(conf, "= /_cd_auth")
        # the WebSocket check needs the Upgrade header; a client cannot pick the dashboard's scope
        assert "proxy_set_header X-Original-Upgrade $http_upgrade;" in auth
        assert 'proxy_set_header X-Auth-Scope "";' in auth
        comfy = location(conf, "/")
        for line in (
            'proxy_set_header Authorization "";',
            "proxy_set_header Cookie $cd_cookie;",
            "add_header X-Frame-Options DENY always;",
            "add_header Content-Security-Policy \"frame-ancestors 'none'\" always;",
        ):
            assert line in comfy, line
        login = location(conf, "= /login")
        assert "client_max_body_size 8k;" in login


def test_forwarded_addresses_are_set_not_appended(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "pw")
    text = nginx.render(s, Workspace(s.workspace_root), tmp_path / "run", user_line="")
    assert "$proxy_add_x_forwarded_for" not in text
    assert text.count("proxy_set_header X-Real-IP $remote_addr;") == text.count("proxy_set_header Host")
    dashboard = text[text.index("# ---- dashboard") : text.index("# ---- ComfyUI")]
    assert "client_max_body_size 8k;" in location(dashboard, "= /login")


def location(text: str, head: str) -> str:
    """The body of the first `location <head> {` block."""
    start = text.index(f"location {head} {{")
    depth, i = 0, start
    while True:
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1


@pytest.mark.parametrize("password", ["", "pw"])
def test_dashboard_port_carries_comfyui_api_itself(tmp_path: Path, password: str) -> None:
    s = settings_for(tmp_path, password)
    text = nginx.render(s, Workspace(s.workspace_root), tmp_path / "run", user_line="")
    dashboard = text[text.index("# ---- dashboard") : text.index("# ---- ComfyUI")]
    api = location(dashboard, "/api/comfyui/")
    assert "proxy_pass http://cd_comfyui$cd_comfyui_uri;" in api  # the raw URI, not re-encoded
    assert '"~^/api/comfyui(/.*)$"   $1;' in text
    for line in (
        "auth_request /_cd_auth_api;",
        "error_page 401 403 418 500 = @cd_api_dashboard;",
        "error_page 502 504 = @cd_api_down;",
        'proxy_set_header Authorization "";',
        'proxy_set_header X-CSRF-Token "";',
        "proxy_set_header Cookie $cd_cookie;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Host $http_host;",
    ):
        assert line in api, line
    check = location(dashboard, "= /_cd_auth_api")
    assert "internal;" in check and "proxy_pass http://cd_dashboard/auth/verify;" in check
    assert "proxy_set_header X-Auth-Scope dashboard-api;" in check
    assert "proxy_pass_request_body off;" in check
    fallback = location(dashboard, "@cd_api_dashboard")
    assert "proxy_pass http://cd_dashboard$request_uri;" in fallback
    down = location(dashboard, "@cd_api_down")
    assert "if ($request_method !~ ^(GET|HEAD)$)" in down and "return 503 '" in down
    assert "proxy_pass http://cd_dashboard$request_uri;" in down
    # streamed both ways, with the http block's limits and timeouts
    assert "proxy_request_buffering off;" in text and f"client_max_body_size {nginx.MAX_BODY};" in text
    assert f"proxy_read_timeout {nginx.READ_TIMEOUT_S}s;" in text
    comfyui_port = location(text[text.index("# ---- ComfyUI") :], "/")
    for directive in nginx.API_BUFFERING:
        assert directive in api and directive in comfyui_port


def test_public_ports_listen_everywhere_internal_ports_only_upstream(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "pw")
    text = nginx.render(s, Workspace(s.workspace_root), tmp_path / "run", user_line="")
    assert f"listen {s.dashboard_port};" in text
    assert f"listen {s.comfyui_port};" in text
    assert f"server 127.0.0.1:{s.comfyui_internal_port};" in text
    assert f"server 127.0.0.1:{s.dashboard_internal_port};" in text
    assert f"listen {s.comfyui_internal_port}" not in text
    for directive in (
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "absolute_redirect off;",
        f"client_max_body_size {nginx.MAX_BODY};",
        f"proxy_read_timeout {nginx.READ_TIMEOUT_S}s;",
        "proxy_set_header Upgrade $http_upgrade;",
    ):
        assert directive in text


def test_logs_go_to_the_workspace_and_runtime_files_to_the_run_dir(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "")
    ws = Workspace(s.workspace_root)
    conf = nginx.write_config(s, ws, tmp_path / "run")
    text = conf.read_text()
    assert f"error_log {ws.logs / nginx.ERROR_LOG} warn;" in text
    assert f"access_log {ws.logs / nginx.ACCESS_LOG} " in text
    assert f"pid {tmp_path / 'run'}/nginx.pid;" in text
    for name in nginx.TEMP_DIRS:
        assert (tmp_path / "run" / name).is_dir()
        assert f"{tmp_path / 'run'}/{name};" in text
    assert ws.logs.is_dir()


def test_user_line_only_for_root(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "")
    text = nginx.render(s, Workspace(s.workspace_root), tmp_path / "run")
    if os.geteuid() == 0:
        assert any(line.startswith("user ") for line in text.splitlines())
    else:
        assert "\nuser " not in text


def test_paths_nginx_cannot_quote_are_refused(tmp_path: Path) -> None:
    s = stack_settings(tmp_path / "my ws", dashboard_internal=free_port(), comfyui_internal=free_port())
    with pytest.raises(nginx.NginxError, match="cannot be written"):
        nginx.render(s, Workspace(s.workspace_root), tmp_path / "run")


def test_internal_port_equal_to_a_public_port_is_refused(tmp_path: Path) -> None:
    base = settings_for(tmp_path, "")
    clash = Settings(**{**base.__dict__, "dashboard_internal_port": base.comfyui_port})
    with pytest.raises(nginx.NginxError, match="DASHBOARD_INTERNAL_PORT"):
        nginx.render(clash, Workspace(clash.workspace_root), tmp_path / "run")


def test_argv_runs_in_the_foreground_with_its_own_prefix(tmp_path: Path) -> None:
    conf = tmp_path / "run" / "nginx.conf"
    assert nginx.argv(conf, "/usr/sbin/nginx") == [
        "/usr/sbin/nginx",
        "-p",
        f"{tmp_path / 'run'}/",
        "-c",
        str(conf),
        "-e",
        "stderr",
    ]


def test_missing_binary_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(nginx, "_SEARCH", ())
    with pytest.raises(nginx.NginxError, match="ENABLE_NGINX=false"):
        nginx.find_binary()


@pytest.mark.nginx
@pytest.mark.parametrize("password", ["", "pw"])
def test_nginx_accepts_the_config(nginx_binary: str, tmp_path: Path, password: str) -> None:
    s = settings_for(tmp_path, password)
    conf = nginx.write_config(s, Workspace(s.workspace_root), tmp_path / "run")  # public: all addresses
    nginx.check(conf, nginx_binary)


@pytest.mark.nginx
def test_check_reports_nginx_own_words(nginx_binary: str, tmp_path: Path) -> None:
    bad = tmp_path / "nginx.conf"
    bad.write_text("events {}\nhttp { server { listen 1; bogus_directive on; } }\n")
    with pytest.raises(nginx.NginxError, match="bogus_directive"):
        nginx.check(bad, nginx_binary)


@pytest.mark.parametrize(
    ("host", "listen"),
    [("0.0.0.0", ""), ("", ""), ("::", ""), ("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")],
)
def test_public_ports_listen_where_dashboard_host_says(tmp_path: Path, host: str, listen: str) -> None:
    base = settings_for(tmp_path, "")
    s = Settings(**{**base.__dict__, "dashboard_host": host})
    assert nginx.public_listen_host(s) == listen
    text = nginx.write_config(s, Workspace(s.workspace_root), tmp_path / "run").read_text()
    assert f"listen {listen + ':' if listen else ''}{s.comfyui_port};" in text


def per_gpu(s: Settings) -> list[Instance]:
    base = s.comfyui_internal_port
    return [Instance.on_gpu(0, base, 0), Instance.on_gpu(1, base + 1, 1)]


@pytest.mark.parametrize("password", ["", "pw"])
def test_each_gpus_comfyui_opens_at_its_path_with_the_same_rules(tmp_path: Path, password: str) -> None:
    """COMFYUI_GPUS: /gpu/<n>/ on ComfyUI's port is GPU n's ComfyUI, behind the same auth_request,
    login and frame rules as /; /api/comfyui/ is left to the dashboard's proxy (it spreads)."""
    s = settings_for(tmp_path, password)
    text = nginx.render(s, Workspace(s.workspace_root), tmp_path / "run", user_line="", instances=per_gpu(s))
    dashboard = text[text.index("# ---- dashboard") : text.index("# ---- ComfyUI")]
    assert "location /api/comfyui/" not in dashboard and "proxy_pass http://cd_dashboard;" in dashboard
    port = text[text.index("# ---- ComfyUI") :]
    root = location(port, "/")
    assert "proxy_pass http://cd_comfyui;" in root
    for gpu in (0, 1):
        block = location(port, f"/gpu/{gpu}/")
        assert f"proxy_pass http://cd_comfyui_{gpu}$cd_gpu_uri;" in block  # the raw URI
        assert f"rewrite ^ /comfyui-unavailable?instance=comfyui-{gpu} break;" in location(
            port, f"@comfyui_down_{gpu}"
        )
        # every line of / that guards or strips (auth, login, our credentials, frames) is here too
        kept = [
            line.strip()
            for line in root.splitlines()[1:-1]
            if "proxy_pass" not in line and "@comfyui_down" not in line
        ]
        for line in kept:
            assert line in block, line
        assert f"return 302 /gpu/{gpu}/;" in location(port, f"= /gpu/{gpu}")
    ups = text[text.index("upstream cd_comfyui_1 {") :]
    assert ups.splitlines()[1].strip() == f"server 127.0.0.1:{s.comfyui_internal_port + 1};"
    one = nginx.render(
        s, Workspace(s.workspace_root), tmp_path / "run", user_line="", instances=per_gpu(s)[:1]
    )
    assert "/gpu/" not in one and "location /api/comfyui/" in one  # one ComfyUI: as before


@pytest.mark.nginx
@pytest.mark.parametrize("password", ["", "pw"])
def test_nginx_accepts_the_per_gpu_config(nginx_binary: str, tmp_path: Path, password: str) -> None:
    s = settings_for(tmp_path, password)
    conf = nginx.write_config(s, Workspace(s.workspace_root), tmp_path / "run", instances=per_gpu(s))
    nginx.check(conf, nginx_binary)
