"""A job's progress (stage, node, sampler step) sent with the RunPod SDK's `progress_update`.

`progress_update(job, data)` posts `{"status": "IN_PROGRESS", "output": data}` to RunPod's job
API from a new thread (with a new HTTP session) and returns at once. Without RunPod's
environment (RUNPOD_WEBHOOK_POST_OUTPUT) it has nowhere to post: it would log an error per call
(its URL is a placeholder) without failing or holding the job. So updates are sent only when
RunPod's job API is configured, at most one per `interval` (the first, and a change of stage
always go), and are logged at debug level otherwise.

What RunPod's `/status/{id}` shows while the job runs:

    {"stage": "running", "node": "3", "title": "KSampler", "nodes_done": 2, "nodes": 7,
     "step": 12, "steps": 20}

Stages: uploading (the job's images), downloading (missing models, with install_missing),
queued, running, sending (outputs).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: The SDK's `progress_update(job, progress)`.
Send = Callable[[Mapping[str, Any], Any], None]
INTERVAL_S = 0.5


def runpod_job_api(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the SDK has RunPod's job API to post progress to (set by RunPod on a worker)."""
    return bool((os.environ if environ is None else environ).get("RUNPOD_WEBHOOK_POST_OUTPUT"))


class Progress:
    """One job's progress; call it with the prompt run's events (`queued`, `cached`, `node`,
    `progress`) and `stage(...)` for the steps around the run."""

    def __init__(
        self,
        job: Mapping[str, Any],
        send: Send | None,
        *,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.send = send
        self.interval = interval
        self.clock = clock
        self.state: dict[str, Any] = {"stage": "starting"}
        self.done: set[str] = set()
        self.sent = 0
        self._last: float | None = None

    @property
    def node(self) -> str | None:
        """The node that runs now (for a timeout's message)."""
        title = self.state.get("title")
        return str(title) if title else None

    def stage(self, name: str, **extra: Any) -> None:
        changed = self.state.get("stage") != name
        self.state = {"stage": name, **extra}
        self._push(force=changed)

    def __call__(self, kind: str, data: Mapping[str, object]) -> None:
        """The prompt run's events (comfyui/runner.py EventSink)."""
        if kind == "queued":
            nodes = data.get("nodes")
            self.stage("queued", nodes=nodes if isinstance(nodes, int) else None)
        elif kind == "cached":
            cached = data.get("nodes")
            if isinstance(cached, list):
                self.done.update(str(n) for n in cached)
        elif kind == "node":
            node = str(data.get("node"))
            self.done.add(node)
            nodes = self.state.get("nodes")
            started = self.state.get("stage") != "running"
            self.state = {
                "stage": "running",
                "node": node,
                "title": data.get("title"),
                "nodes_done": len(self.done) - 1,
                "nodes": nodes,
            }
            self._push(force=started)  # a new stage goes at once; node changes are throttled
        elif kind == "progress":
            self.state["step"] = data.get("value")
            self.state["steps"] = data.get("max")
            self._push(force=data.get("value") == data.get("max"))

    def _push(self, *, force: bool = False) -> None:
        now = self.clock()
        if not force and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        update = {k: v for k, v in self.state.items() if v is not None}
        if self.send is None:
            log.debug("job %s: %s", self.job.get("id"), update)
            return
        self.sent += 1
        self.send(self.job, update)
