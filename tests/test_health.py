"""readiness(services) with `start` running in-process (fake ComfyUI, short timings)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker import startup
from comfyui_docker.gpu import GpuReport
from comfyui_docker.health import readiness
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor import Timings
from fakes.comfyui_root.launch import FAKE_ROOT, free_port

FAST = Timings(
    start_grace=0.5,
    ready_timeout=8,
    poll_interval=0.05,
    retries=1,
    backoff_base=0.1,
    backoff_cap=0.2,
    stop_sigint=1,
    stop_sigterm=1,
)


def make_settings(tmp_path: Path, root: Path) -> Settings:
    return Settings.from_env(
        {
            "WORKSPACE_ROOT": str(tmp_path / "ws"),
            "COMFYUI_ROOT": str(root),
            "COMFYUI_PYTHON": sys.executable,
            "DASHBOARD_HOST": "127.0.0.1",
            "DASHBOARD_PORT": str(free_port()),
            "COMFYUI_INTERNAL_PORT": str(free_port()),
            "COMFYUI_PASS_ENV": "FAKE_COMFYUI_MODE",  # the fake's fault switch reaches it
        }
    )


async def no_gpu(settings: Settings) -> GpuReport:
    return GpuReport(verdict="no_gpu", message="no NVIDIA GPU is visible (test)")


async def mismatch(settings: Settings) -> GpuReport:
    return GpuReport(
        verdict="mismatch",
        message="ComfyUI's torch is built for CUDA 13.0 (cu130), but this driver supports CUDA 12.4",
        hint="pick the cu126 image variant",
        devices=[{"index": 0, "name": "Test GPU", "memory_total": 1}],
    )


async def run_until(
    settings: Settings, predicate: Any, preflight: Any = no_gpu, **env: str
) -> dict[str, Any]:
    services = Services.create(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        startup.run(
            settings,
            stop=stop,
            preflight=preflight,
            echo_children=False,
            services=services,
            comfyui_timings=FAST,
        )
    )
    try:
        for _ in range(400):
            await asyncio.sleep(0.05)
            if task.done():
                raise AssertionError(f"start ended early: {task.result()}")
            if services.supervisor is not None and "comfyui" in services.supervisor.services:
                report = readiness(services)
                if predicate(report):
                    return report
        raise AssertionError(f"not reached: {readiness(services)}")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


async def test_fatal_comfyui_shows_its_last_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_COMFYUI_MODE", "exit_immediately")
    report = await run_until(make_settings(tmp_path, FAKE_ROOT), lambda r: r["comfyui"]["state"] == "fatal")
    assert report["ready"] is False and report["healthy"] is False and report["status"] == "failed"
    assert "exiting at once" in report["comfyui"]["detail"]
    assert any("exiting at once" in line for line in report["comfyui"]["log_tail"])
    assert report["disk"]["free"] > 0 and report["disk"]["state"] in ("ok", "low")
    assert report["gpu"]["state"] == "no_gpu"


async def test_running_comfyui_is_ready(tmp_path: Path) -> None:
    report = await run_until(make_settings(tmp_path, FAKE_ROOT), lambda r: r["ready"])
    assert report["comfyui"]["state"] == "running" and report["healthy"] is True
    names = [t["name"] for t in report["timings"]]
    assert names == [
        "environment",
        "configuration",
        "volume check",
        "gpu preflight",
        "custom nodes",
        "comfyui",
        "preset catalog",
        "dashboard",
        "downloads",
    ]
    assert all(t["seconds"] >= 0 for t in report["timings"])


async def test_cuda_mismatch_blocks_instead_of_crash_looping(tmp_path: Path) -> None:
    report = await run_until(
        make_settings(tmp_path, FAKE_ROOT), lambda r: r["comfyui"]["state"] == "blocked", preflight=mismatch
    )
    assert "cu126" in report["comfyui"]["detail"] and report["healthy"] is False
    assert report["comfyui"]["pid"] is None


async def test_not_installed_is_ready_with_what_to_set(tmp_path: Path) -> None:
    report = await run_until(
        make_settings(tmp_path, tmp_path / "nothing"), lambda r: r["comfyui"]["state"] == "not_installed"
    )
    assert report["ready"] is True and "COMFYUI_ROOT" in report["comfyui"]["detail"]
