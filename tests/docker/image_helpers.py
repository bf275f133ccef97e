"""Helpers for the image's tests: nginx for real, the dashboard on uvicorn, free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker.children import nginx
from comfyui_docker.errors import AppError
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
PASSWORD = "correct horse battery"
TOKEN = "test-api-token-0123456789"


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def nginx_or_skip() -> str:
    try:
        return nginx.find_binary()
    except AppError as exc:
        pytest.skip(f"needs the nginx binary: {exc} (scripts/install-system-deps.sh installs it)")


def stack_settings(
    workspace: Path, *, dashboard_internal: int, comfyui_internal: int, password: str = PASSWORD
) -> Settings:
    env = {
        "WORKSPACE_ROOT": str(workspace),
        "ENABLE_NGINX": "true",
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_PORT": str(free_port()),
        "DASHBOARD_INTERNAL_PORT": str(dashboard_internal),
        "COMFYUI_INTERNAL_PORT": str(comfyui_internal),
        "ACCESS_PASSWORD": password,
        "API_TOKEN": TOKEN if password else "",
    }
    return Settings.from_env(env, cwd=workspace.parent)


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    conf: Path
    run_dir: Path
    settings: Settings

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.settings.dashboard_port}"

    @property
    def comfyui(self) -> str:
        return f"http://127.0.0.1:{self.settings.comfyui_port}"


@contextmanager
def run_nginx(settings: Settings, run_dir: Path) -> Iterator[Nginx]:
    """nginx as a normal child process with its own prefix, on loopback copies of the public ports."""
    workspace = Workspace(settings.workspace_root)
    conf = nginx.write_config(settings, workspace, run_dir, listen_host="127.0.0.1")
    nginx.check(conf)
    log = (run_dir / "stderr.log").open("wb")
    proc = subprocess.Popen(nginx.argv(conf), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(settings.dashboard_port, proc=proc)
        wait_port(settings.comfyui_port, proc=proc)
        yield Nginx(proc, conf, run_dir, settings)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


class Uvicorn:
    """The dashboard app on 127.0.0.1 in a thread (the same process, as in the image)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.port = port
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
