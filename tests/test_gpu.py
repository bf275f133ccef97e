"""GPU preflight: NVML readings (an injected fake NVML), torch's CUDA build read in another
interpreter, and the verdicts with the variant to pick. There is no GPU on this machine; the
real NVML path is exercised by scripts/gpu-check.py on a GPU host."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from comfyui_docker import gpu


class FakeNvml:
    def __init__(self, cuda: int = 12040, devices: int = 1, fail: bool = False) -> None:
        self.cuda, self.count, self.fail = cuda, devices, fail

    def nvmlInit(self) -> None:
        if self.fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA RTX 4090"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=24 * 1024**3)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda


def fake_python(tmp_path: Path, cuda: str | None, version: str = "2.9.1") -> Path:
    """An interpreter whose `torch` is a stub package with the given version.py."""
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('stub: must not be imported')\n")
    cuda_line = f"cuda: Optional[str] = '{cuda}'" if cuda else "cuda: Optional[str] = None"
    (pkg / "version.py").write_text(f"from typing import Optional\n__version__ = '{version}'\n{cuda_line}\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "site"} exec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def test_read_nvml_with_a_fake_library() -> None:
    nv = gpu.read_nvml(FakeNvml())
    assert nv["devices"] == [{"index": 0, "name": "NVIDIA RTX 4090", "memory_total": 24 * 1024**3}]
    assert nv["driver_version"] == "550.54.15" and nv["cuda_driver"] == "12.4"


def test_no_library_means_no_gpu_and_cpu_flag() -> None:
    report = gpu.judge(gpu.read_nvml(FakeNvml(fail=True)), {}, "skipped")
    assert report.verdict == "no_gpu" and report.wants_cpu and not report.blocks_start
    assert "NVML Shared Library Not Found" in report.message


async def test_static_check_reads_torch_cuda_without_importing(tmp_path: Path) -> None:
    data = await gpu.static_torch_check(fake_python(tmp_path, "12.8", "2.9.1+cu128"))
    assert data == {"torch": "2.9.1+cu128", "cuda": "12.8"}


async def test_static_check_without_torch_is_skipped() -> None:
    report = await gpu.preflight(Path(sys.executable), nvml=FakeNvml())  # our venv has no torch
    assert report.verdict == "ok" and report.torch_check == "skipped" and "no torch" in report.message


@pytest.mark.parametrize(
    ("driver", "torch_cuda", "verdict", "variant_in_hint"),
    [
        (12040, "13.0", "mismatch", "cu126"),  # driver 12.4 cannot run a CUDA 13 build
        (12040, "12.8", "warning", "cu126"),  # same major, newer minor: may work
        (12080, "12.8", "ok", None),
        (13000, "12.6", "ok", None),
        (12020, None, "mismatch", "cu126"),  # CPU-only torch on a GPU machine
    ],
)
async def test_verdicts(
    tmp_path: Path, driver: int, torch_cuda: str | None, verdict: str, variant_in_hint: str | None
) -> None:
    report = await gpu.preflight(fake_python(tmp_path, torch_cuda), nvml=FakeNvml(cuda=driver))
    assert report.verdict == verdict, report
    assert report.torch_check == "static" and report.seconds < 5
    if variant_in_hint:
        assert variant_in_hint in report.hint or "--cpu" in report.hint
    assert report.blocks_start == (verdict == "mismatch")


def test_recommend_newest_fitting_variant() -> None:
    assert gpu.recommend((12, 4)) == "cu126"  # minor-version compatibility within CUDA 12
    assert gpu.recommend((11, 8)) is None
    assert gpu.recommend((12, 6)) == "cu126"
    assert gpu.recommend((12, 9)) == "cu128"
    assert gpu.recommend((13, 1)) == "cu130"


def test_user_args_decide_the_device() -> None:
    assert gpu.wants_cpu_flag(("--preview-method", "auto"))
    assert not gpu.wants_cpu_flag(("--cpu",))
    assert not gpu.wants_cpu_flag(("--cuda-device=1",))


async def test_a_cancelled_check_ends_its_python(tmp_path: Path) -> None:
    """`start` cancels the background torch check when it stops: the interpreter it ran must end
    with it, not outlive the event loop."""
    pid_file = tmp_path / "pid"
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    python.chmod(0o755)
    task = asyncio.create_task(gpu.deep_torch_check(python, timeout=60))
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pid, 0)
