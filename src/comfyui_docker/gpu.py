"""GPU preflight: is a GPU visible (NVML), and can ComfyUI's torch use this driver?

The most common "it started but nothing works" on rented GPUs is a torch built for a newer CUDA
than the host driver supports. Two checks, both cheap enough for the start path:

1. NVML (nvidia-ml-py): device count, names, memory, driver version and the highest CUDA version
   the driver supports. No library / no device → `no_gpu` (a warning: ComfyUI gets `--cpu`).
2. In ComfyUI's own interpreter (`COMFYUI_PYTHON`), without importing torch: locate torch and read
   its `version.py` (`cuda = '12.8'`). ~50 ms instead of the 2-5 s a torch import costs, so the
   check adds nothing measurable to ComfyUI's boot. When that interpreter has no torch (a source
   checkout, the test fake) the check is skipped and says so.

`deep_torch_check` imports torch and asks `torch.cuda.is_available()` (with a timeout); the
start path runs it in the background after ComfyUI is launched, and scripts/gpu-check.py runs it.

Verdicts: ok, no_gpu (warning), warning (same CUDA major, newer minor: may work), mismatch
(blocked: torch's CUDA major is newer than the driver's), error (the check itself failed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings

#: Image variants and the minimum Linux driver for their CUDA (NVIDIA's CUDA release notes).
VARIANTS: tuple[tuple[str, tuple[int, int], str], ...] = (
    ("cu126", (12, 6), "560.28"),
    ("cu128", (12, 8), "570.26"),
    ("cu130", (13, 0), "580.65"),
)
GPU_FLAGS = (
    "--cpu",
    "--gpu-only",
    "--cuda-device",
    "--directml",
    "--oneapi-device-selector",
    "--cuda-malloc",
)

_STATIC_SCRIPT = r"""
import importlib.util, json, os, re
spec = importlib.util.find_spec("torch")
if spec is None or not spec.origin:
    print(json.dumps({"torch": None}))
else:
    text = open(os.path.join(os.path.dirname(spec.origin), "version.py"), encoding="utf-8").read()
    def grab(name):
        m = re.search(r"^" + name + r"\s*(?::\s*[^=]+)?=\s*['\"]([^'\"]*)['\"]", text, re.M)
        return m.group(1) if m else None
    print(json.dumps({"torch": grab("__version__"), "cuda": grab("cuda")}))
"""

_DEEP_SCRIPT = r"""
import json
try:
    import torch
    out = {"torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        out["available"] = bool(torch.cuda.is_available())
        out["devices"] = torch.cuda.device_count() if out["available"] else 0
    except Exception as exc:
        out["available"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
except Exception as exc:
    out = {"torch": None, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


@dataclass
class GpuReport:
    verdict: str = "unknown"
    message: str = ""
    hint: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver: str | None = None
    torch_version: str | None = None
    torch_cuda: str | None = None
    torch_check: str = "skipped"  # static | import | skipped
    torch_available: bool | None = None
    recommended_variant: str | None = None
    seconds: float = 0.0
    declared: bool = False  # the devices are COMFYUI_TEST_GPUS's (declared_gpus.py), not NVML's
    per_gpu: dict[str, Any] = field(default_factory=dict)  # GPU index -> its torch check (deep)

    @property
    def blocks_start(self) -> bool:
        return self.verdict == "mismatch"

    @property
    def wants_cpu(self) -> bool:
        """ComfyUI gets --cpu: no GPU, or only declared ones (there is no real GPU behind them)."""
        return self.verdict == "no_gpu" or self.declared

    @property
    def indexes(self) -> list[int]:
        """The visible GPUs' indexes, as NVML (nvidia-smi) numbers them."""
        return [int(d["index"]) for d in self.devices if isinstance(d.get("index"), int)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ver(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


class _MissingNvml:
    """Stands in for pynvml where NVML's library cannot be loaded: the same failure from nvmlInit,
    without importing pynvml (~0.1 s of start-up on a machine without an NVIDIA driver)."""

    def nvmlInit(self) -> None:
        raise RuntimeError("NVML Shared Library Not Found")  # pynvml's message for this case

    def nvmlShutdown(self) -> None:
        pass


def missing_nvml() -> Any | None:
    """A stand-in for pynvml when libnvidia-ml.so.1 (the name pynvml loads on Linux) cannot be
    loaded; None otherwise (then use pynvml itself)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return _MissingNvml()
    return None


def read_nvml(nvml: Any = None) -> dict[str, Any]:
    """NVML readings as plain data; `{"error": ...}` when there is no driver or no device."""
    if nvml is None:
        import pynvml

        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return {"error": f"NVML unavailable: {exc}", "devices": []}
    try:
        count = nvml.nvmlDeviceGetCount()
        devices = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total": int(mem.total),
                }
            )
        driver = nvml.nvmlSystemGetDriverVersion()
        cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
        return {
            "devices": devices,
            "driver_version": driver.decode() if isinstance(driver, bytes) else str(driver),
            "cuda_driver": f"{cuda // 1000}.{(cuda % 1000) // 10}",
        }
    except Exception as exc:
        return {"error": f"NVML query failed: {exc}", "devices": []}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: S110 - shutting down a half-initialised NVML is best effort
            pass


async def _run_python(
    python: Path, script: str, timeout: float, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    try:
        proc = await asyncio.create_subprocess_exec(
            str(python),
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
        )
    except OSError as exc:
        return {"error": f"cannot run {python}: {exc.strerror or exc}"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": f"{python} did not answer within {timeout:g} s"}
    except asyncio.CancelledError:  # start-up stopping: the check must not outlive its loop
        if proc.returncode is None:
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    try:
        data: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"{python} failed: {err.decode(errors='replace').strip()[-300:]}"}
    return data


async def static_torch_check(python: Path, timeout: float = 10.0) -> dict[str, Any]:
    """torch's version and CUDA build, read from its files in ComfyUI's interpreter (no import)."""
    return await _run_python(python, _STATIC_SCRIPT, timeout)


async def deep_torch_check(
    python: Path, timeout: float = 90.0, *, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Import torch in ComfyUI's interpreter and ask CUDA (slow: seconds). `env` is added to ours
    (CUDA_VISIBLE_DEVICES: ask about one GPU, as its ComfyUI will see it)."""
    return await _run_python(python, _DEEP_SCRIPT, timeout, env)


def recommend(cuda_driver: tuple[int, int] | None) -> str | None:
    """The newest image variant whose CUDA this driver supports; else the oldest one of the same
    CUDA major (it runs through CUDA's minor-version compatibility); None when nothing fits."""
    if cuda_driver is None:
        return None
    fitting = [name for name, need, _drv in VARIANTS if need <= cuda_driver]
    if fitting:
        return fitting[-1]
    same_major = [name for name, need, _drv in VARIANTS if need[0] == cuda_driver[0]]
    return same_major[0] if same_major else None


def judge(nv: dict[str, Any], torch: dict[str, Any], torch_check: str) -> GpuReport:
    """Turn the readings into a verdict with a message a user can act on."""
    report = GpuReport(
        devices=list(nv.get("devices", [])),
        driver_version=nv.get("driver_version"),
        cuda_driver=nv.get("cuda_driver"),
        torch_version=torch.get("torch"),
        torch_cuda=torch.get("cuda"),
        torch_check=torch_check,
        torch_available=torch.get("available"),
    )
    drv = _ver(report.cuda_driver)
    report.recommended_variant = recommend(drv)
    if not report.devices:
        report.verdict = "no_gpu"
        report.message = f"no NVIDIA GPU is visible ({nv.get('error', 'NVML lists no device')})"
        report.hint = "ComfyUI runs on the CPU (--cpu, slow); on a GPU pod, check the container got the GPU"
        return report
    names = ", ".join(d["name"] for d in report.devices)
    if torch_check == "skipped" or (torch.get("error") and not torch.get("torch")):
        report.verdict = "ok" if "error" not in torch else "error"
        why = torch.get("error") or torch.get("skipped") or "torch not checked"
        report.message = f"{names}; driver {report.driver_version} (CUDA {report.cuda_driver}); {why}"
        return report
    tcuda = _ver(report.torch_cuda)
    if tcuda is None:
        report.verdict = "mismatch"
        report.message = f"ComfyUI's torch {report.torch_version} is a CPU-only build, but {names} is present"
        report.hint = "use an image variant with CUDA (cu126/cu128/cu130) or set COMFYUI_EXTRA_ARGS=--cpu"
        return report
    variant = f"cu{tcuda[0]}{tcuda[1]}"
    min_driver = next((d for name, _need, d in VARIANTS if name == variant), None)
    if drv is not None and tcuda[0] > drv[0]:
        report.verdict = "mismatch"
        report.message = (
            f"ComfyUI's torch is built for CUDA {report.torch_cuda} ({variant}), but this driver "
            f"({report.driver_version}) supports CUDA {report.cuda_driver} at most"
        )
        report.hint = _pick_hint(report.recommended_variant, variant, min_driver)
    elif drv is not None and tcuda > drv:
        report.verdict = "warning"
        report.message = (
            f"ComfyUI's torch is built for CUDA {report.torch_cuda} ({variant}); the driver supports "
            f"CUDA {report.cuda_driver}: it may work (minor-version compatibility) or fail at the first job"
        )
        report.hint = _pick_hint(report.recommended_variant, variant, min_driver)
    else:
        report.verdict = "ok"
        report.message = (
            f"{names}; driver {report.driver_version} (CUDA {report.cuda_driver}); torch "
            f"{report.torch_version} (CUDA {report.torch_cuda})"
        )
    if report.torch_available is False:
        report.verdict = "mismatch"
        report.message = f"torch.cuda.is_available() is False: {torch.get('error', 'no usable CUDA device')}"
        report.hint = _pick_hint(report.recommended_variant, variant, min_driver)
    return report


def _pick_hint(best: str | None, current: str, min_driver: str | None) -> str:
    need = f" (needs driver >= {min_driver})" if min_driver else ""
    if best and best != current:
        return f"pick the {best} image variant, or a GPU pod whose driver supports {current}{need}"
    return f"pick a GPU pod with a newer driver{need}"


def wants_cpu_flag(extra_args: tuple[str, ...] | list[str]) -> bool:
    """Add --cpu for a GPU-less machine unless the user's own args already decide the device."""
    return not any(arg.split("=")[0] in GPU_FLAGS for arg in extra_args)


def _judge_torch(nv: dict[str, Any], torch: dict[str, Any], mode: str, no_torch: str) -> GpuReport:
    """The verdict on a torch check, or `no_torch` as the reason it was skipped (no torch at all)."""
    if torch.get("torch") is None and "error" not in torch:
        return judge(nv, {"skipped": no_torch}, "skipped")
    return judge(nv, torch, mode)


def nvml_for(settings: Settings) -> Any | None:
    """What to read GPUs from: the GPUs COMFYUI_TEST_GPUS declares, else NVML's stand-in when its
    library is missing, else None (pynvml itself)."""
    if settings.comfyui_test_gpus:
        from .declared_gpus import DeclaredNvml

        return DeclaredNvml(settings.comfyui_test_gpus)
    return missing_nvml()


async def preflight_for(settings: Settings) -> GpuReport:
    """The start-up preflight for `settings`: NVML (or the declared GPUs) and torch's CUDA build.
    Declared GPUs have no driver behind them: torch is not checked against them."""
    if not settings.comfyui_test_gpus:
        return await preflight(settings.comfyui_python, nvml=nvml_for(settings))
    started = time.perf_counter()
    nv = await asyncio.to_thread(read_nvml, nvml_for(settings))
    report = judge(nv, {"skipped": "GPUs declared by COMFYUI_TEST_GPUS: ComfyUI runs on the CPU"}, "skipped")
    report.declared = True
    report.seconds = round(time.perf_counter() - started, 4)
    return report


async def preflight(python: Path, *, nvml: Any = None, timeout: float = 10.0) -> GpuReport:
    """NVML + the static torch check (only when a GPU is visible). Fast: tens of milliseconds."""
    started = time.perf_counter()
    nv = await asyncio.to_thread(read_nvml, nvml)
    if not nv.get("devices"):
        report = judge(nv, {}, "skipped")
    else:
        torch = await static_torch_check(python, timeout)
        report = _judge_torch(nv, torch, "static", f"no torch in {python}: CUDA check skipped")
    report.seconds = round(time.perf_counter() - started, 4)
    return report


async def deep_preflight(python: Path, *, nvml: Any = None, timeout: float = 90.0) -> GpuReport:
    """NVML + importing torch (what scripts/gpu-check.py and the background check run)."""
    started = time.perf_counter()
    nv = await asyncio.to_thread(read_nvml, nvml)
    torch = await deep_torch_check(python, timeout)
    report = _judge_torch(nv, torch, "import", f"no torch in {python}")
    report.seconds = round(time.perf_counter() - started, 4)
    return report
