"""Custom-node tasks of the running dashboard: one per install / update / remove, plus the
background reinstall of requirements. Each publishes its output lines and state on the bus as
`node_task` events (pushed to the browser over `/ws`, as presets' `task_state`)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AppError
from ..events import EventBus, NodeTaskState

log = logging.getLogger(__name__)
LINES = 200
KEEP = 50


@dataclass
class NodeTask:
    id: str
    action: str  # install | update | remove | requirements
    name: str
    state: str = "running"  # running | done | failed
    error: str | None = None
    result: Any = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LINES))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "result": self.result,
            "started": self.started,
            "finished": self.finished,
            "lines": list(self.lines),
        }


Runner = Callable[[Callable[[str], None]], Awaitable[Any]]


class NodeTasks:
    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = bus
        self.items: dict[str, NodeTask] = {}
        self._running: set[asyncio.Task[None]] = set()

    def _publish(self, task: NodeTask, line: str = "") -> None:
        if self.bus is not None:
            self.bus.publish(
                NodeTaskState(
                    task_id=task.id,
                    action=task.action,
                    name=task.name,
                    state=task.state,
                    line=line,
                    error=task.error,
                )
            )

    def start(self, action: str, name: str, runner: Runner) -> NodeTask:
        """Run `runner(on_line)` in the background as a task; returns at once."""
        task = NodeTask(uuid.uuid4().hex[:12], action, name)
        self.items[task.id] = task
        for old in sorted(self.items.values(), key=lambda t: t.started)[:-KEEP]:
            if old.state != "running":
                self.items.pop(old.id, None)

        def on_line(line: str) -> None:
            task.lines.append(line)
            self._publish(task, line)

        async def body() -> None:
            try:
                task.result = await runner(on_line)
                task.state = "done"
            except AppError as exc:
                task.state, task.error = "failed", str(exc)
            except Exception as exc:  # a task must end in a state the page can show
                log.exception("node task %s %s", action, name)
                task.state, task.error = "failed", f"{type(exc).__name__}: {exc}"
            task.finished = time.time()
            self._publish(task)

        self._publish(task)
        handle = asyncio.create_task(body(), name=f"node-{action}-{name}")
        self._running.add(handle)
        handle.add_done_callback(self._running.discard)
        return task

    def get(self, task_id: str) -> NodeTask | None:
        return self.items.get(task_id)

    def list(self) -> list[NodeTask]:
        return sorted(self.items.values(), key=lambda t: t.started, reverse=True)

    def busy(self, name: str) -> bool:
        return any(t.name == name and t.state == "running" for t in self.items.values())

    async def close(self) -> None:
        for handle in list(self._running):
            handle.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
