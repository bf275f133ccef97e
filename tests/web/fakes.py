"""Test doubles for the services the web layer talks to (their real modules are tested on their own).

`FakePresets` is a `services.Presets` in memory (the PresetService's interface to the dashboard)
and publishes `TaskState` events like the real one. `FakeSupervisor` is a `services.Supervision`
with a settable state; it counts restarts. mypy checks both against the Protocols (`_checked`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from comfyui_docker.catalog.schema import FileSpec
from comfyui_docker.errors import Conflict, InvalidInput, PresetNotFound, TaskNotFound
from comfyui_docker.events import EventBus, TaskState
from comfyui_docker.services import Presets, Supervision
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor import State, Status

PRESETS: dict[str, dict[str, Any]] = {
    "SD15_BASE": {
        "id": "SD15_BASE",
        "name": "Stable Diffusion 1.5",
        "category": "base",
        "type": "image",
        "files": [{"path": "checkpoints/sd15.safetensors", "url": "https://h.example/sd15", "size": 10}],
        "variants": ["fp16"],
    },
    "FLUX_SCHNELL": {
        "id": "FLUX_SCHNELL",
        "name": "FLUX.1 schnell",
        "category": "flux",
        "type": "image",
        "files": [
            {"path": "diffusion_models/flux1-schnell.safetensors", "url": "https://h.example/f", "size": 10},
            {"path": "vae/ae.safetensors", "url": "https://h.example/ae", "size": 10},
        ],
        "variants": [],
    },
    "WAN_22_5B_TIV2": {
        "id": "WAN_22_5B_TIV2",
        "name": "Wan 2.2 5B",
        "category": "wan",
        "type": "video",
        "files": [{"path": "vae/wan2.2_vae.safetensors", "url": "https://h.example/w", "size": 10}],
        "variants": [],
    },
}


@dataclass
class FakeTask:
    id: str
    preset_id: str
    state: str = "queued"
    bytes_done: int = 0
    bytes_total: int = 100
    files: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "preset_id": self.preset_id,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "speed": 0.0,
            "eta": None,
            "error": None,
        }


class FakeCatalog:
    problems: tuple[str, ...] = (
        "presets.yaml:12 files[0].path: 'lora' is not a ComfyUI model folder; did you mean 'loras'?",
    )
    presets = PRESETS


class FakePresets:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.catalog = FakeCatalog()
        self.settings: Settings | None = None
        self._tasks: dict[str, FakeTask] = {}
        self._ids = itertools.count(1)
        self.installed: set[str] = set()
        self.calls: list[tuple[str, Any]] = []

    def list_presets(self, category: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list", (category, type)))
        return [
            dict(p)
            for p in PRESETS.values()
            if (category is None or p["category"] == category) and (type is None or p["type"] == type)
        ]

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings

    def get(self, preset_id: str) -> dict[str, Any]:
        if preset_id not in PRESETS:
            raise PresetNotFound(f"no preset named {preset_id}", hint="see presets list")
        return dict(PRESETS[preset_id])

    def describe(self, preset_id: str) -> dict[str, Any]:
        return {"installed": self.installed_state(preset_id), **self.get(preset_id)}

    async def install(self, preset_id: str, variant: str | None = None) -> FakeTask:
        preset = self.get(preset_id)
        if variant is not None and variant not in preset["variants"]:
            raise InvalidInput(f"{preset_id} has no variant {variant!r}")
        task = FakeTask(f"t{next(self._ids)}", preset_id)
        self._tasks[task.id] = task
        self.bus.publish(TaskState(task_id=task.id, preset_id=preset_id, state="queued"))
        return task

    async def install_files(self, label: str, files: list[FileSpec]) -> FakeTask:
        task = FakeTask(f"t{next(self._ids)}", label, files=[{"path": f.path, "url": f.url} for f in files])
        self._tasks[task.id] = task
        return task

    def add_task(self, task: FakeTask) -> FakeTask:
        """A task as if an install had been running (no event published)."""
        self._tasks[task.id] = task
        return task

    def task(self, task_id: str) -> FakeTask:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(f"no task {task_id}") from None

    def tasks(self) -> list[FakeTask]:
        return list(self._tasks.values())

    async def wait(self, task_id: str) -> FakeTask:
        return self.task(task_id)

    async def cancel(self, task_id: str) -> FakeTask:
        task = self.task(task_id)
        if task.state in ("done", "failed", "cancelled"):
            raise Conflict(f"task {task_id} has already ended ({task.state})")
        task.state = "cancelled"
        return task

    async def uninstall(self, preset_id: str) -> list[str]:
        preset = self.get(preset_id)
        if any(t.preset_id == preset_id and t.state == "downloading" for t in self._tasks.values()):
            raise Conflict(f"{preset_id} is installing")
        self.installed.discard(preset_id)
        return [f["path"] for f in preset["files"]]

    async def close(self) -> None:
        self.calls.append(("close", None))

    def installed_state(self, preset_id: str) -> str:
        self.get(preset_id)
        return "installed" if preset_id in self.installed else "not_installed"

    def owners_of(self, rel_path: str) -> list[str]:
        return sorted(pid for pid, p in PRESETS.items() if any(f["path"] == rel_path for f in p["files"]))

    def providers(self, folder: str, filename: str) -> list[str]:
        rel = f"{folder}/{filename}"
        return sorted(pid for pid, p in PRESETS.items() if any(f["path"] == rel for f in p["files"]))


class FakeSupervisor:
    """Supervises "comfyui" only; `state_value` is what it says (a State's value)."""

    def __init__(self, state: str = "running", detail: str | None = None) -> None:
        self.state_value = state
        self.detail = detail
        self.restarts = 0

    def status(self, name: str) -> Status:
        if name != "comfyui":
            raise KeyError(name)
        detail = self.detail if self.detail is not None else f"fake supervisor says {self.state_value}"
        return Status(name, State(self.state_value), detail)

    def log_tail(self, name: str, lines: int) -> list[str]:
        self.status(name)
        return [f"fake comfyui line {i}" for i in range(lines)][-lines:]

    async def restart(self, name: str) -> None:
        self.status(name)
        self.restarts += 1
        self.state_value = "starting"


def _checked(bus: EventBus) -> tuple[Presets, Supervision]:
    """Never called: mypy proves here that the fakes are what the services' Protocols say."""
    return FakePresets(bus), FakeSupervisor()
