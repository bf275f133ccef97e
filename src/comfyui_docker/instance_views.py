"""What each ComfyUI instance is doing, in one place: `/health/ready`, `GET /api/service/comfyui`
and Home read it.

    state, detail, pid, restarts   the supervisor's word on its service (`unmanaged` without one)
    queue                          prompts running + pending, from the last `status` frame its
                                   relay heard (None until one came)
    vram_used, vram_total          its GPU's memory, from NVML (or COMFYUI_TEST_GPUS's declared
                                   GPUs), when it runs on one GPU

`overall(views)` is ComfyUI's state as one: with several instances it runs while any of them
does (new prompts go to the running ones), and the detail names the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .instance import Instance
from .services import Services

RUNNING = "running"
#: The order in which a state stands for all of them when none runs (the most hopeful first).
HOPE = ("starting", "backoff", "stopped", "not_started", "fatal", "blocked", "not_installed")


@dataclass(frozen=True)
class InstanceView:
    name: str
    gpu: int | None
    port: int
    state: str
    detail: str = ""
    pid: int | None = None
    restarts: int = 0
    queue: int | None = None
    vram_used: int | None = None
    vram_total: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def instance_views(svc: Services, gpus: Sequence[Mapping[str, Any]] = ()) -> list[InstanceView]:
    """One view per ComfyUI, in order. `gpus` is a GPU reading (index, memory_used, memory_total)."""
    instances = svc.instances
    if not instances:
        instances = [Instance.first(svc.settings)]
    queues = svc.comfyui.queue_lengths if svc.comfyui is not None else {}
    by_index = {g.get("index"): g for g in gpus}
    out = []
    for instance in instances:
        state, detail, pid, restarts = "unmanaged", "not supervised by this process", None, 0
        if svc.supervisor is not None:
            try:
                status = svc.supervisor.status(instance.name)
            except KeyError:
                state, detail = "not_started", ""
            else:
                state, detail, pid, restarts = status.state.value, status.detail, status.pid, status.restarts
        gpu = by_index.get(instance.gpu) if instance.gpu is not None else None
        out.append(
            InstanceView(
                instance.name,
                instance.gpu,
                instance.port,
                state,
                detail,
                pid,
                restarts,
                queues.get(instance.name),
                int(gpu["memory_used"]) if gpu and "memory_used" in gpu else None,
                int(gpu["memory_total"]) if gpu and "memory_total" in gpu else None,
            )
        )
    return out


def overall(views: Sequence[InstanceView]) -> tuple[str, str]:
    """(state, detail) of ComfyUI as one: the instance's own with one; with several, `running`
    while any runs, else the most hopeful state among them; the detail names each that does not run."""
    if len(views) == 1:
        return views[0].state, views[0].detail
    running = [v for v in views if v.state == RUNNING]
    others = [v for v in views if v.state != RUNNING]
    notes = "; ".join(f"{v.name} {v.state}" + (f" ({v.detail})" if v.detail else "") for v in others)
    if running:
        if not others:
            return RUNNING, f"{len(views)} ComfyUIs running"
        return RUNNING, f"{len(running)} of {len(views)} ComfyUIs running; {notes}"
    states = [v.state for v in views]
    state = next((s for s in HOPE if s in states), states[0])
    return state, notes
