"""One boot of the image: `buildah run` with the image's own entry point and environment.

`buildah run --isolation chroot --network host`: the container shares this machine's network, so
every port is moved to a free one by the environment variables the image documents; the volume
is a host folder mounted at /workspace. The processes are this machine's, so the check can see
them (their environment, their exit) as a container runtime would.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

# New for every run of the check: the image is booted with a login, as it should be.
PASSWORD = secrets.token_urlsafe(12)
TOKEN = secrets.token_urlsafe(24)


# Below Linux's ephemeral range (32768-60999): outgoing connections of other programs on this
# machine take their local ports from that range, and one of them can take a port the container
# is about to bind (nginx listens on 0.0.0.0 with the host's network).
PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A port nothing listens on, on every address, outside the ephemeral range."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # the container binds every address
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def image_config(tag: str) -> dict[str, Any]:
    out = subprocess.run(
        ["buildah", "inspect", "--type", "image", tag], capture_output=True, text=True, check=True
    )
    config: dict[str, Any] = json.loads(out.stdout)["Docker"]["config"]
    return config


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
    body: bytes | None = None, timeout: float = 10.0,
) -> Response:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `predicate()` is true, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(interval)
    return None


@dataclass
class Ports:
    dashboard: int = field(default_factory=free_port)
    comfyui: int = field(default_factory=free_port)
    dashboard_internal: int = field(default_factory=free_port)
    comfyui_internal: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        return {
            "DASHBOARD_PORT": str(self.dashboard),
            "COMFYUI_PORT": str(self.comfyui),
            "DASHBOARD_INTERNAL_PORT": str(self.dashboard_internal),
            "COMFYUI_INTERNAL_PORT": str(self.comfyui_internal),
        }


class Container:
    """A working container of the image; `boot()` starts its entry point, `stop()` sends SIGTERM."""

    def __init__(self, tag: str, workspace: Path, ports: Ports, log_path: Path) -> None:
        self.tag = tag
        self.workspace = workspace
        self.ports = ports
        self.log_path = log_path
        self.config = image_config(tag)
        self.name = subprocess.run(
            ["buildah", "from", "--quiet", "--name", f"image-check-{os.getpid()}-{time.monotonic_ns()}", tag],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._log: IO[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        # `buildah run --isolation chroot` gives no PID namespace: tini is not PID 1, so it
        # registers as a child subreaper instead, and orphans are still reaped by it.
        return {**self.ports.env(), "ACCESS_PASSWORD": PASSWORD, "API_TOKEN": TOKEN, "TINI_SUBREAPER": "1"}

    def run_argv(self, command: list[str], *, env: dict[str, str] | None = None) -> list[str]:
        argv = ["buildah", "run", "--isolation", "chroot", "--network", "host",
                "-v", f"{self.workspace}:/workspace"]  # fmt: skip
        for key, value in (env if env is not None else self.env).items():
            argv += ["--env", f"{key}={value}"]
        return [*argv, self.name, "--", *command]

    def boot(self) -> None:
        entry = list(self.config.get("Entrypoint") or []) + list(self.config.get("Cmd") or [])
        self._log = self.log_path.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.run_argv(entry), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def exec(self, command: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Another process in the same container (what `docker exec` and HEALTHCHECK do)."""
        return subprocess.run(self.run_argv(command), capture_output=True, text=True, timeout=timeout)

    def processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def init_process(self) -> psutil.Process | None:
        """The entry point's first process (tini): the container's PID 1."""
        for p in self.processes():
            try:
                if os.path.basename(p.exe()) == "tini" or p.name() == "tini":
                    return p
            except psutil.Error:
                continue
        return None

    def comfyui_process(self) -> psutil.Process | None:
        for p in self.processes():
            try:
                if "main.py" in p.cmdline():
                    return p
            except psutil.Error:
                continue
        return None

    def stop(self, timeout: float = 10.0) -> tuple[float | None, int | None, list[str]]:
        """SIGTERM to PID 1: (seconds until the container ended or None, its exit code, survivors)."""
        assert self.proc is not None
        init = self.init_process()
        before = self.processes()
        start = time.monotonic()
        if init is None:
            return None, None, ["no tini process found"]
        init.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
            seconds: float | None = time.monotonic() - start
        except subprocess.TimeoutExpired:
            code, seconds = None, None
        survivors = []
        for p in before:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
            except psutil.NoSuchProcess:
                continue
        return seconds, code, survivors

    def kill(self) -> None:
        """Whatever is left, at the end (never part of a check)."""
        if self.proc is not None and self.proc.poll() is None:
            for p in self.processes():
                try:
                    p.kill()
                except psutil.Error:
                    pass
            self.proc.kill()
            self.proc.wait(10)
        if self._log is not None:
            self._log.close()

    def remove(self) -> None:
        self.kill()
        subprocess.run(["buildah", "rm", self.name], capture_output=True)
