"""The serverless worker as a real subprocess: `comfyui-docker serverless --rp_serve_api`, the RunPod
SDK's local test server (POST /runsync) in front of our handler, ComfyUI (the fake by default)
supervised behind it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

import graphs
from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import FAKE_ROOT, free_port, python_for

CLI = [sys.executable, "-m", "comfyui_docker"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int | None
    env: dict[str, str]
    log_path: Path

    @property
    def workspace(self) -> Path:
        return Path(self.env["WORKSPACE_ROOT"])

    @property
    def tmp(self) -> Path:
        return Path(self.env["TMPDIR"])

    @property
    def comfyui_url(self) -> str:
        return f"http://127.0.0.1:{self.env['COMFYUI_INTERNAL_PORT']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, body: Mapping[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(
                f"{path}: HTTP {exc.code}: {exc.read()[:500]!r}\n{self.log()[-3000:]}"
            ) from None
        return answer

    def runsync(self, job_input: Mapping[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        return self.post("/runsync", {"input": job_input}, timeout)

    def comfyui(self) -> psutil.Process:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if "main.py" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        raise AssertionError("no ComfyUI child")

    def temp_files(self) -> set[Path]:
        """Everything under the worker's TMPDIR (ComfyUI's database lives there, by design)."""
        return set(self.tmp.rglob("*"))

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return int(self.proc.returncode)


def worker_env(base: Path, comfyui_root: Path = FAKE_ROOT, **extra: str) -> dict[str, str]:
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "RUNPOD_", "BUCKET_"))}
    return {
        **keep,
        "WORKSPACE_ROOT": str(base / "ws"),
        "COMFYUI_ROOT": str(comfyui_root),
        "COMFYUI_PYTHON": sys.executable if comfyui_root == FAKE_ROOT else python_for(comfyui_root),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "TMPDIR": str(base / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # ComfyUI sees an allow-listed environment: the fake's switches must be named
        "COMFYUI_PASS_ENV": "FAKE_COMFYUI_STEP_SECONDS,FAKE_COMFYUI_START_DELAY,FAKE_COMFYUI_MODE",
        **extra,
    }


def launch(base: Path, env: dict[str, str], *, serve_api: bool = True, wait: float = 60.0) -> Worker:
    port = free_port() if serve_api else None
    args = ["--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)] if serve_api else []
    log_path = base / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "serverless", *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(proc, port, env, log_path)
    if serve_api:
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the worker exited with {proc.returncode}:\n{worker.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    worker.stop()
                    raise AssertionError(
                        f"the worker's API did not answer in {wait} s:\n{worker.log()[-3000:]}"
                    ) from None
                time.sleep(0.1)
    return worker


@pytest.fixture
def stopper() -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.stop()


def api_graph(width: int = 64, height: int = 48, prefix: str = "sl/api") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": 0x336699},
        },
        "2": {
            "class_type": "SaveImage",
            "_meta": {"title": "Result"},
            "inputs": {"images": ["1", 0], "filename_prefix": prefix},
        },
    }


def ui_graph(width: int = 40, height: int = 30, prefix: str = "sl/ui") -> dict[str, Any]:
    """The same graph as ComfyUI's editor saves it."""
    return {
        "last_node_id": 2,
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "widgets_values": [width, height, 1, 0],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "mode": 0,
                "title": "Result",
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "widgets_values": [prefix],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }


def load_image_graph(name: str, prefix: str = "sl/loaded") -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "_meta": {"title": "Input"}, "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def slow_graph(frames: int) -> dict[str, Any]:
    """About frames x FAKE_COMFYUI_STEP_SECONDS on the fake (ColorTransfer steps per frame)."""
    return graphs.slow(frames, save="sl/slow")


def decoded_size(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    return png.size_of(base64.b64decode(entry["data"]))
