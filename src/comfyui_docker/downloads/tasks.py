"""Install tasks: state, bytes, speed, ETA; published on the event bus (throttled).

    queued -> downloading -> verifying -> done
         \\-> failed        (error: code, message, hint)
         \\-> cancelled     (by the user; .part files stay for a later install)

State changes always publish a TaskState event; byte progress publishes DownloadProgress at
most `interval` seconds apart per task.

A task records its `owner` (`process_identity`: host, PID, process start): at start a runtime
resumes only the unfinished tasks it may (`may_resume`), not those another live runtime or another
pod sharing the volume is running.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import DownloadProgress, EventBus, TaskState, Throttle
from .locks import process_started

STATES = ("queued", "downloading", "verifying", "done", "failed", "cancelled")
FINAL = frozenset({"done", "failed", "cancelled"})


def new_task_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class FileProgress:
    path: str
    url: str
    size: int | None
    done: int = 0
    state: str = "queued"  # queued | present | downloading | verifying | done | failed

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "url": self.url, "size": self.size, "done": self.done, "state": self.state}


@dataclass
class Task:
    id: str
    preset_id: str
    variant: str | None = None
    kind: str = "preset"  # "preset" | "files" (ad-hoc downloads)
    state: str = "queued"
    bytes_done: int = 0
    bytes_total: int = 0
    speed: float = 0.0
    eta: float | None = None
    error: dict[str, Any] | None = None
    files: list[FileProgress] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    spec: list[dict[str, Any]] = field(default_factory=list)  # ad-hoc file specs, to resume
    owner: str = ""  # the runtime process running it (host, pid, start time), as JSON

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "preset_id": self.preset_id,
            "variant": self.variant,
            "kind": self.kind,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "speed": round(self.speed, 1),
            "eta": None if self.eta is None else round(self.eta, 1),
            "error": self.error,
            "files": [f.to_dict() for f in self.files],
            "created": self.created,
            "updated": self.updated,
        }

    def to_row(self) -> dict[str, Any]:
        row = self.to_dict()
        row["spec"] = self.spec
        row["owner"] = self.owner
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        """A task as the journal stored it (`to_row`)."""
        return cls(
            id=row["id"],
            preset_id=row["preset_id"],
            variant=row["variant"],
            kind=row["kind"],
            state=row["state"],
            bytes_done=row["bytes_done"],
            bytes_total=row["bytes_total"],
            error=row["error"],
            files=[FileProgress(f["path"], f["url"], f["size"], f["done"], f["state"]) for f in row["files"]],
            created=row["created"],
            updated=row["updated"],
            spec=row["spec"],
            owner=row.get("owner", ""),
        )


def process_identity() -> str:
    pid = os.getpid()
    return json.dumps({"host": socket.gethostname(), "pid": pid, "started": process_started(pid)})


def may_resume(owner: str, me: str) -> bool:
    """Resume an unfinished task at start only if it ran in this process before, or its process
    is gone and it ran on this host (another pod sharing the volume resumes its own tasks)."""
    if not owner or owner == me:
        return True
    try:
        info = json.loads(owner)
    except ValueError:
        return True
    if info.get("host") != socket.gethostname():
        return False
    started = process_started(int(info.get("pid", 0)))
    return started is None or abs(started - float(info.get("started") or 0)) > 1.0


class Reporter:
    """Publishes a task's changes on the bus and keeps speed/ETA (moving window)."""

    def __init__(
        self,
        bus: EventBus,
        save: Callable[[Task], None],
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.save = save
        self.clock = clock
        self.wall = wall
        self.throttle = Throttle(interval, clock)
        self._window: dict[str, list[tuple[float, int]]] = {}

    def state(self, task: Task, state: str, error: dict[str, Any] | None = None) -> None:
        task.state = state
        task.error = error
        task.updated = self.wall()
        if state in FINAL:
            task.speed, task.eta = 0.0, None
            self._window.pop(task.id, None)
        self.save(task)
        self.bus.publish(
            TaskState(
                task_id=task.id,
                preset_id=task.preset_id,
                state=state,
                bytes_done=task.bytes_done,
                bytes_total=task.bytes_total,
                error=error["message"] if error else None,
            )
        )

    def progress(self, task: Task, file: FileProgress, n: int) -> None:
        task.bytes_done += n
        file.done += n
        now = self.clock()
        window = self._window.setdefault(task.id, [])
        window.append((now, task.bytes_done))
        while len(window) > 2 and now - window[0][0] > 5.0:
            window.pop(0)
        if not self.throttle.ready(task.id):
            return
        t0, b0 = window[0]
        task.speed = (task.bytes_done - b0) / (now - t0) if now > t0 else 0.0
        left = max(task.bytes_total - task.bytes_done, 0)
        task.eta = left / task.speed if task.speed > 0 else None
        task.updated = self.wall()
        self.bus.publish(
            DownloadProgress(
                task_id=task.id,
                preset_id=task.preset_id,
                file=file.path,
                bytes_done=task.bytes_done,
                bytes_total=task.bytes_total,
                speed=task.speed,
                eta=task.eta,
            )
        )
