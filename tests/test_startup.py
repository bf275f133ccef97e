"""`comfyui-docker start` as a real subprocess (dashboard first, ComfyUI supervised, clean stop)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from fakes.comfyui_root.launch import FAKE_ROOT, free_port

CLI = [sys.executable, "-m", "comfyui_docker"]


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s (last: {last})")


def launch(tmp_path: Path, comfyui_root: Path | None) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {
        **os.environ,
        "WORKSPACE_ROOT": str(tmp_path / "ws"),
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "COMFYUI_PYTHON": sys.executable,
        "COMFYUI_ROOT": str(comfyui_root or (tmp_path / "no-comfyui")),
        "ENABLE_NGINX": "false",
    }
    with (tmp_path / "start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, env


def children_of(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def stopper() -> Any:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_start_serves_dashboard_then_comfyui_and_stops_cleanly_on_sigterm(
    tmp_path: Path, stopper: Any
) -> None:
    proc, env = launch(tmp_path, FAKE_ROOT)
    stopper(proc)
    base = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30)
    status, ready = wait_for(lambda: (r := get(base + "/health/ready"))[1]["ready"] and r, 30)
    assert status == 200 and ready["comfyui"]["state"] == "running"
    assert [t["name"] for t in ready["timings"]][:6] == [
        "environment",
        "configuration",
        "volume check",
        "gpu preflight",
        "custom nodes",
        "comfyui",
    ]
    comfy = json.loads(
        urllib.request.urlopen(f"http://127.0.0.1:{env['COMFYUI_INTERNAL_PORT']}/system_stats").read()
    )
    argv = comfy["system"]["argv"]
    ws = Path(env["WORKSPACE_ROOT"])
    assert argv[argv.index("--output-directory") + 1] == str(ws / "output")
    assert argv[argv.index("--input-directory") + 1] == str(ws / "uploads")
    assert argv[argv.index("--extra-model-paths-config") + 1] == str(ws / "config" / "extra_model_paths.yaml")
    assert "--cpu" in argv  # no GPU here
    health = subprocess.run([*CLI, "health", "--ready"], env=env, capture_output=True, text=True, timeout=30)
    assert health.returncode == 0, health.stdout + health.stderr
    kids = children_of(proc)
    assert kids
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 10
    assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    log = (ws / "logs" / "comfyui.log").read_text()
    assert "Stopped server" in log  # ComfyUI got its clean SIGINT


def test_start_without_comfyui_runs_the_dashboard(tmp_path: Path, stopper: Any) -> None:
    proc, env = launch(tmp_path, None)
    stopper(proc)
    base = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30)
    status, ready = wait_for(
        lambda: (r := get(base + "/health/ready"))[1].get("comfyui", {}).get("state") != "not_started" and r,
        10,
    )
    assert ready["comfyui"]["state"] == "not_installed"
    assert "COMFYUI_ROOT" in ready["comfyui"]["detail"]
    assert status == 200 and ready["ready"] is True
    health = subprocess.run([*CLI, "health", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert health.returncode == 0 and json.loads(health.stdout)["comfyui"]["state"] == "not_installed"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_health_cli_fails_when_nothing_answers(tmp_path: Path) -> None:
    env = {**os.environ, "WORKSPACE_ROOT": str(tmp_path), "DASHBOARD_PORT": str(free_port())}
    proc = subprocess.run([*CLI, "health"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "does not answer" in proc.stdout


def test_restart_cli_restarts_comfyui_through_the_dashboard(tmp_path: Path, stopper: Any) -> None:
    proc, env = launch(tmp_path, FAKE_ROOT)
    stopper(proc)
    base = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    _, first = wait_for(lambda: (r := get(base + "/health/ready"))[1].get("ready") and r, 40)
    old_pid = first["comfyui"]["pid"]
    out = subprocess.run([*CLI, "restart"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    _, again = wait_for(
        lambda: (
            (r := get(base + "/health/ready"))[1].get("ready") and r[1]["comfyui"]["pid"] != old_pid and r
        ),
        40,
    )
    assert again["comfyui"]["restarts"] == 1

    def tail_when_shown() -> str:
        out = subprocess.run([*CLI, "logs", "-n", "5"], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout if "To see the GUI go to" in out.stdout else ""

    # "ready" is ComfyUI answering; its output reaches the log file through the supervisor's pump,
    # which a loaded machine may run a moment later
    logs = wait_for(tail_when_shown, 20)
    assert "To see the GUI go to" in logs
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


@pytest.mark.nginx
def test_start_with_nginx_in_front(tmp_path: Path, stopper: Any) -> None:
    if not any(Path(p).exists() for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")):
        pytest.skip("nginx is not installed")
    proc, env = launch(tmp_path, FAKE_ROOT)
    proc.kill()
    proc.wait(5)
    env = {
        **env,
        "ENABLE_NGINX": "true",
        "COMFYUI_PORT": str(free_port()),
        "DASHBOARD_INTERNAL_PORT": str(free_port()),
    }
    with (tmp_path / "nginx-start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stopper(proc)
    public = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    wait_for(lambda: get(public + "/health")[0] == 200, 40)
    internal = f"http://127.0.0.1:{env['DASHBOARD_INTERNAL_PORT']}"
    _, ready = wait_for(lambda: (r := get(internal + "/health/ready"))[1].get("ready") and r, 40)
    assert ready["nginx"]["state"] == "running"
    stats = wait_for(lambda: get(f"http://127.0.0.1:{env['COMFYUI_PORT']}/system_stats"), 20)
    assert stats[0] == 200 and "--output-directory" in stats[1]["system"]["argv"]
    nginx_pid = ready["nginx"]["pid"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not psutil.pid_exists(nginx_pid) or psutil.Process(nginx_pid).status() == psutil.STATUS_ZOMBIE


def test_restart_cli_sends_the_token_when_a_password_is_set(tmp_path: Path, stopper: Any) -> None:
    proc, env = launch(tmp_path, None)
    proc.kill()
    proc.wait(5)
    env = {**env, "ACCESS_PASSWORD": "correct horse battery staple"}
    with (tmp_path / "pw-start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stopper(proc)
    base = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30)
    req = urllib.request.Request(base + "/api/service/comfyui/restart", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 401
    refused.value.close()
    out = subprocess.run([*CLI, "restart"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    time.sleep(0.5)
    health = subprocess.run([*CLI, "health", "--json"], env=env, capture_output=True, text=True, timeout=30)
    report = json.loads(health.stdout)
    assert report["comfyui"]["state"] == "not_installed" and report["comfyui"]["restarts"] == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_comfyui_gets_an_allow_listed_environment(tmp_path: Path, stopper: Any) -> None:
    """Every custom node runs inside ComfyUI's process: our secrets must not be in its environment."""
    secrets = {
        "ACCESS_PASSWORD": "correct horse battery staple",
        "API_TOKEN": "api-token-0123456789",
        "HF_TOKEN": "hf_secret_0123456789",
        "CIVITAI_TOKEN": "civitai_secret_0123",
        "PUBLIC_KEY": "ssh-ed25519 AAAA test",
        "SOME_OTHER_SETTING": "x",
    }
    env = {
        **os.environ,
        **secrets,
        "WORKSPACE_ROOT": str(tmp_path / "ws"),
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "COMFYUI_PYTHON": sys.executable,
        "COMFYUI_ROOT": str(FAKE_ROOT),
        "ENABLE_NGINX": "false",
        "CUDA_VISIBLE_DEVICES": "",
        "OPENAI_API_KEY": "for-a-custom-node",
        "COMFYUI_PASS_ENV": "OPENAI_API_KEY",
    }
    with (tmp_path / "start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stopper(proc)
    port = env["COMFYUI_INTERNAL_PORT"]
    wait_for(lambda: get(f"http://127.0.0.1:{port}/system_stats")[0] == 200, 60)
    comfy = next(k for k in children_of(proc) if "main.py" in " ".join(k.cmdline()))
    seen = comfy.environ()
    assert not set(secrets) & set(seen), sorted(set(secrets) & set(seen))
    # ComfyUI's venv first on PATH, then ours, unchanged
    first, _, rest = seen["PATH"].partition(os.pathsep)
    assert first == str(Path(sys.executable).parent)
    assert rest.split(os.pathsep) == [p for p in os.environ["PATH"].split(os.pathsep) if p and p != first]
    assert seen["OPENAI_API_KEY"] == "for-a-custom-node" and "CUDA_VISIBLE_DEVICES" in seen
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_forwarding_headers_do_not_dodge_the_login_backoff(tmp_path: Path, stopper: Any) -> None:
    """Without nginx the client is the socket peer: uvicorn must not take X-Forwarded-For from a
    loopback peer, and the dashboard must not believe X-Real-IP. Rotating both used to give every
    guess a fresh address, so the backoff never started."""
    proc, env = launch(tmp_path, None)
    proc.kill()
    proc.wait(5)
    env = {**env, "ACCESS_PASSWORD": "correct horse battery staple"}
    with (tmp_path / "pw-start.log").open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "start"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stopper(proc)
    base = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30)
    codes = []
    for i in range(8):
        req = urllib.request.Request(
            base + "/login",
            data=b"password=guess&next=/",
            method="POST",
            headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"203.0.113.{i}"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        codes.append(refused.value.code)
        refused.value.close()
    assert codes[:5] == [401] * 5 and 429 in codes[5:], codes
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_missing_nvml_library_reads_as_pynvml_would() -> None:
    from comfyui_docker import gpu
    from comfyui_docker.web.sampler import SystemSampler

    shim = gpu.missing_nvml()
    if shim is None:
        pytest.skip("libnvidia-ml.so.1 loads here: the preflight uses pynvml itself")
    assert gpu.read_nvml(shim) == gpu.read_nvml()  # pynvml's own answer without the library
    assert "NVML Shared Library Not Found" in gpu.read_nvml(shim)["error"]
    sampler = SystemSampler()
    assert sampler.gpus() == [] and sampler.gpu_error == "no GPU: NVML Shared Library Not Found"


def test_start_path_leaves_page_only_modules_unimported(tmp_path: Path) -> None:
    """What `start` imports before the dashboard answers: the CLI, the app with all its routes.
    Modules only a page or another command needs stay out (they cost start-up time)."""
    script = (
        "import sys\n"
        "from comfyui_docker.cli import build_parser\n"
        "from comfyui_docker.settings import Settings\n"
        "from comfyui_docker.web.app import create_app\n"
        "build_parser()\n"
        "app = create_app(Settings.from_env())\n"
        "print(' '.join(m for m in ('rich', 'jinja2', 'pynvml', 'comfyui_docker.doctor',"
        " 'comfyui_docker.workflows.templates') if m in sys.modules))\n"
        "assert {'/health', '/login', '/api/presets', '/api/system'} <= set(app.openapi()['paths'])\n"
    )
    env = {**os.environ, "WORKSPACE_ROOT": str(tmp_path / "ws")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""
