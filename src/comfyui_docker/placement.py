"""Which ComfyUIs start, and on which GPU: COMFYUI_GPUS, the GPU preflight per GPU, the RAM check.

    COMFYUI_GPUS empty    one ComfyUI that sees every GPU (service `comfyui`, comfyui.log)
    COMFYUI_GPUS=all      one ComfyUI per visible GPU, as many as the machine's RAM holds
    COMFYUI_GPUS=0,1,3    one ComfyUI per named GPU (a GPU that is not visible: held `blocked`)

The plan is a list of `children.comfyui.Instance`s. GPU n's ComfyUI is the service `comfyui-n`:
CUDA_VISIBLE_DEVICES=n (with CUDA_DEVICE_ORDER=PCI_BUS_ID, so CUDA numbers GPUs as NVML and
nvidia-smi do), loopback port COMFYUI_INTERNAL_PORT + n, its own
temp folder and database, its log `comfyui-n.log`. Everything on the volume is shared.

Each ComfyUI loads its own models: RAM and VRAM are spent once per instance, nothing is shared
between them. `all` therefore starts only as many as the memory this container may use holds at
COMFYUI_INSTANCE_RAM_GB each (the cgroup limit when there is one, else the machine's RAM), and
says so with the numbers; an explicit list is started as asked, with the same warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .gpu import GpuReport, deep_torch_check
from .instance import Instance
from .settings import Settings, check_instance_port

log = logging.getLogger(__name__)
GIB = 1024**3
CGROUP = Path("/sys/fs/cgroup")
#: cgroup v1 writes a huge number (about 2**63) for "no limit".
NO_LIMIT = 2**60


@dataclass
class Plan:
    """The ComfyUIs to start, in order (the gateway's clients follow it), and what to warn about."""

    instances: list[Instance]
    warnings: list[str] = field(default_factory=list)

    @property
    def per_gpu(self) -> bool:
        return any(i.gpu is not None for i in self.instances)

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.instances]


def memory_limit(cgroup: Path = CGROUP, total: int | None = None) -> int:
    """Bytes of memory this process may use: the machine's RAM, or the container's cgroup limit
    when lower (RunPod and Docker limit pods that way, and /proc/meminfo shows the host's)."""
    limit = psutil.virtual_memory().total if total is None else total
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        try:
            raw = path.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            continue
        if raw.isdigit() and 0 < int(raw) < NO_LIMIT:
            limit = min(limit, int(raw))
        break
    return limit


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _listing(gpus: Sequence[int]) -> str:
    return ", ".join(str(g) for g in gpus) or "none"


def plan(settings: Settings, report: GpuReport, *, memory: int | None = None) -> Plan:
    """The ComfyUIs to start for `settings` on the GPUs `report` saw, within `memory` bytes."""
    choice = settings.comfyui_gpus
    if not choice.per_gpu:
        return Plan([Instance.first(settings)])
    visible = report.indexes
    warnings: list[str] = []
    if choice.every and not visible:
        warnings.append(f"COMFYUI_GPUS=all, but no GPU is visible ({report.message}): one ComfyUI runs")
        return Plan([Instance.first(settings)], warnings)
    gpus = list(visible) if choice.every else list(choice.indexes)
    memory = memory_limit() if memory is None else memory
    each = settings.comfyui_instance_ram_gb * GIB
    holds = max(1, int(memory // each))
    if len(gpus) > holds:
        why = (
            f"{len(gpus)} ComfyUIs need about {_gib(len(gpus) * each)} of RAM "
            f"(COMFYUI_INSTANCE_RAM_GB={settings.comfyui_instance_ram_gb} each: every ComfyUI loads "
            f"its own models), but this container may use {_gib(memory)}, which holds {holds}"
        )
        if choice.every:
            gpus = gpus[:holds]
            warnings.append(
                f"COMFYUI_GPUS=all: {why}; starting {holds} (GPUs {_listing(gpus)}). Name the GPUs in "
                "COMFYUI_GPUS (e.g. 0,1) or lower COMFYUI_INSTANCE_RAM_GB to start more"
            )
        else:
            warnings.append(f"COMFYUI_GPUS={choice}: {why}; starting them as asked, they may run out of RAM")
    instances = []
    for index, gpu in enumerate(gpus):
        problem = ""
        if gpu not in visible:
            seen = f"GPUs {_listing(visible)}" if visible else "no GPU"
            problem = f"GPU {gpu} is not visible (this machine shows {seen}); remove it from COMFYUI_GPUS"
        instances.append(Instance.on_gpu(gpu, check_instance_port(settings, gpu), index, problem))
    return Plan(instances, warnings)


async def deep_checks(python: Path, instances: Sequence[Instance], timeout: float = 90.0) -> dict[str, Any]:
    """torch.cuda.is_available() for each GPU as its ComfyUI sees it (one torch import per GPU, in
    parallel: seconds, so the start path runs this in the background). GPU index -> the check."""
    targets = [i for i in instances if i.gpu is not None and not i.problem]
    results = await asyncio.gather(*(deep_torch_check(python, timeout, env=p.env) for p in targets))
    return {str(p.gpu): result for p, result in zip(targets, results, strict=True)}
