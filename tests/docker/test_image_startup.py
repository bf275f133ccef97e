"""The image's start-up outside a container: docker/startup.sh with the Dockerfile's environment.

The image's file system is laid out in a temporary folder: the installed package is this venv
(on PATH as /app/dashboard/venv/bin is in the image), the fake ComfyUI is copied to
app/comfyui/ComfyUI with a venv beside it (app/comfyui/venv, seeing this venv's packages), and an
empty folder stands in for /workspace. The environment is the runtime stage's ENV with those
paths, loopback-only public ports, and a password. Then: the dashboard answers through nginx,
the yaml is written, ComfyUI runs on loopback and is restarted when killed, `comfyui-docker
health` exits 0, and SIGTERM (docker stop) ends everything cleanly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from dockerfile_model import parse
from image_helpers import DOCKER, REPO, TOKEN, free_port

pytestmark = [pytest.mark.nginx, pytest.mark.slow]


def image_env() -> dict[str, str]:
    """The runtime stage's ENV as the Dockerfile writes it."""
    env: dict[str, str] = {}
    for ins in parse(DOCKER / "Dockerfile").stages["runtime"].all("ENV"):
        env.update(re.findall(r"(\w+)=(\S+)", ins.args))
    return env


@dataclass
class Pod:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    root: Path
    log: Path

    def url(self, port_var: str, path: str) -> str:
        return f"http://127.0.0.1:{self.env[port_var]}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_for(check: Callable[[], Any], timeout: float, what: str, pod: Pod | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if pod is not None and pod.proc.poll() is not None:
            raise AssertionError(f"start exited with {pod.proc.returncode}:\n{pod.output()}")
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(
        f"{what}: not within {timeout} s (last: {last})" + (f"\n{pod.output()}" if pod else "")
    )


def get(url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def lay_out(root: Path) -> dict[str, str]:
    """The image's folders under `root`; returns the image's environment pointed at them."""
    comfy_root = root / "app" / "comfyui" / "ComfyUI"
    shutil.copytree(REPO / "tests" / "fakes" / "comfyui_root", comfy_root,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    venv = root / "app" / "comfyui" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    host_site = sysconfig.get_paths()["purelib"]  # the fake ComfyUI's dependencies (and their .pth files)
    (site / "host-venv.pth").write_text(f"import site; site.addsitedir({host_site!r})\n")
    (root / "workspace").mkdir()
    mapping = {
        "/app/dashboard/venv/bin": str(Path(sys.executable).parent),  # the installed package
        "/app/comfyui": str(root / "app" / "comfyui"),
        "/workspace": str(root / "workspace"),
    }
    env: dict[str, str] = {}
    for key, value in image_env().items():
        for image_path, here in mapping.items():
            value = value.replace(image_path, here)
        env[key] = value.replace("${PATH}", os.environ["PATH"] + ":/usr/sbin")
    return env


@pytest.fixture(scope="module")
def pod(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    root = tmp_path_factory.mktemp("image")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "WORKSPACE_", "DASHBOARD_"))},
        **lay_out(root),
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_PORT": str(free_port()),
        "DASHBOARD_INTERNAL_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "DASHBOARD_HOST": "127.0.0.1",  # public ports on loopback only, for the test
        "ACCESS_PASSWORD": "image start test",
        "API_TOKEN": TOKEN,
    }
    assert env["ENABLE_NGINX"] == "true"
    log = root / "start.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(DOCKER / "startup.sh")], env=env, cwd=root / "workspace", stdout=fh,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    running = Pod(proc, env, root, log)
    try:
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def comfyui_children(pod: Pod) -> list[psutil.Process]:
    port = pod.env["COMFYUI_INTERNAL_PORT"]
    out = []
    for child in psutil.Process(pod.proc.pid).children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "main.py" in cmd and port in cmd:
            out.append(child)
    return out


def test_dashboard_answers_through_nginx(pod: Pod) -> None:
    _, body = wait_for(lambda: (r := get(pod.url("DASHBOARD_PORT", "/health"))) and r[0] == 200 and r,
                            30, "dashboard /health through nginx", pod)  # fmt: skip
    assert json.loads(body)["status"] == "ok"
    assert get(pod.url("DASHBOARD_PORT", "/api/auth/token"), token=None)[0] == 401  # the login guards it


def test_the_yaml_is_written(pod: Pod) -> None:
    yaml = Path(pod.env["WORKSPACE_ROOT"]) / "config" / "extra_model_paths.yaml"
    text = wait_for(lambda: yaml.is_file() and yaml.read_text(), 30, "extra_model_paths.yaml", pod)
    assert str(Path(pod.env["WORKSPACE_ROOT"]) / "models") in text
    assert "loras:" in text


def test_comfyui_runs_on_loopback_behind_the_login(pod: Pod) -> None:
    wait_for(
        lambda: get(pod.url("COMFYUI_PORT", "/system_stats"))[0] == 200, 60, "ComfyUI through nginx", pod
    )
    (child,) = comfyui_children(pod)
    cmd = child.cmdline()
    assert cmd[cmd.index("--listen") + 1] == "127.0.0.1"
    assert Path(cmd[0]) == Path(pod.env["COMFYUI_PYTHON"])
    port = int(pod.env["COMFYUI_INTERNAL_PORT"])
    listens = {
        c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port
    }
    assert listens == {"127.0.0.1"}
    assert get(pod.url("COMFYUI_PORT", "/system_stats"), token=None)[0] == 401


def test_health_command_exits_0(pod: Pod) -> None:
    wait_for(lambda: get(pod.url("COMFYUI_PORT", "/system_stats"))[0] == 200, 60, "ComfyUI ready", pod)
    proc = subprocess.run(
        ["comfyui-docker", "health"], env=pod.env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_comfyui_is_restarted_when_it_dies(pod: Pod) -> None:
    wait_for(lambda: comfyui_children(pod), 60, "ComfyUI process", pod)
    (first,) = comfyui_children(pod)
    first.kill()
    second = wait_for(
        lambda: [c for c in comfyui_children(pod) if c.pid != first.pid], 60, "ComfyUI restarted", pod
    )
    assert second
    wait_for(lambda: get(pod.url("COMFYUI_PORT", "/system_stats"))[0] == 200, 60, "ComfyUI ready again", pod)


def test_sigterm_stops_everything_cleanly(pod: Pod) -> None:
    wait_for(lambda: get(pod.url("DASHBOARD_PORT", "/health"))[0] == 200, 30, "dashboard", pod)
    family = psutil.Process(pod.proc.pid).children(recursive=True)
    assert any("nginx" in " ".join(p.cmdline()) for p in family)
    started = time.monotonic()
    pod.proc.send_signal(signal.SIGTERM)
    assert pod.proc.wait(15) == 0, pod.output()
    assert time.monotonic() - started < 10, "docker stop would have killed it"
    time.sleep(0.2)
    left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [p.cmdline() for p in left]
