"""GPUs declared by COMFYUI_TEST_GPUS, answering the few NVML calls the runtime makes.

Testing only: a machine without GPUs (CI, a laptop, this project's tests) can try one ComfyUI per
GPU. The GPU preflight, the per-GPU plan and the dashboard's GPU readings read `DeclaredNvml`
where they would read pynvml; ComfyUI itself runs with `--cpu` (gpu.GpuReport.wants_cpu). Each
declared GPU has the memory it was declared with, none of it in use.
"""

from __future__ import annotations

from types import SimpleNamespace

GIB = 1024**3
#: What the declared driver says: a version no real driver has, and CUDA 13.0.
DRIVER = "declared (COMFYUI_TEST_GPUS)"
CUDA = 13000


class DeclaredNvml:
    """pynvml's calls used here (device count, name, memory, driver), over declared GPUs."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, sizes_gib: tuple[int, ...]) -> None:
        self.sizes = sizes_gib

    def nvmlInit(self) -> None:
        return None

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return len(self.sizes)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.sizes):
            raise ValueError(f"no declared GPU {index}")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return f"Declared GPU {handle} ({self.sizes[handle]} GiB)"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        total = self.sizes[handle] * GIB
        return SimpleNamespace(total=total, used=0, free=total)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=0, memory=0)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 0

    def nvmlSystemGetDriverVersion(self) -> str:
        return DRIVER

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return CUDA
