"""Queue, history, WebSocket hub and the prompt worker, with ComfyUI 0.33's frame order (COMFYUI.md §3)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .nodes import Image, NodeError, RunContext, run_node
from .validate import is_link

log = logging.getLogger("fake_comfy")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    sensitive: dict[str, Any] = field(default_factory=dict)  # API keys: never in /queue or /history

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class Job:
    item: QueueItem
    start: int | None = None
    end: int | None = None
    status: str = "pending"
    error: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


class Interrupted(Exception):
    pass


class Hub:
    """WebSocket clients by id; execution frames go to one client, status frames to all."""

    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}

    async def send(self, kind: str, data: dict[str, Any], sid: str | None) -> None:
        text = json.dumps({"type": kind, "data": data})
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for ws in targets:
            if ws is None or ws.closed:
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                pass


class Executor:
    def __init__(self, hub: Hub, make_context: Any, info: Any) -> None:
        self.hub = hub
        self.make_context = make_context  # (item) -> RunContext
        self.info = info  # (class) -> definition
        self.pending: list[QueueItem] = []
        self.running: QueueItem | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.cache: dict[str, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self.interrupt_flag = False
        self.wakeup = asyncio.Event()
        self.number = 0
        self.history_lag = 0.0  # seconds between execution_success and the /history record

    # ---- queue -----------------------------------------------------------------------------
    def remaining(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    async def status(self, sid: str | None = None) -> None:
        await self.hub.send("status", {"status": {"exec_info": {"queue_remaining": self.remaining()}}}, sid)

    async def put(self, item: QueueItem) -> None:
        self.pending.append(item)
        self.pending.sort(key=lambda i: i.number)
        self.jobs[item.prompt_id] = Job(item)
        await self.status()
        self.wakeup.set()

    def delete_pending(self, ids: list[str]) -> None:
        for item in [i for i in self.pending if i.prompt_id in ids]:
            self.pending.remove(item)
            self.jobs.pop(item.prompt_id, None)

    def clear_pending(self) -> None:
        self.delete_pending([i.prompt_id for i in self.pending])

    def interrupt(self, prompt_id: str | None) -> None:
        if prompt_id is None:
            log.info("Interrupting prompt")
            self.interrupt_flag = True
        elif self.running is not None and self.running.prompt_id == prompt_id:
            log.info("Interrupting prompt %s", prompt_id)
            self.interrupt_flag = True
        else:
            log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)

    async def worker(self) -> None:
        while True:
            if not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            item = self.pending.pop(0)
            self.running = item
            self.interrupt_flag = False
            await self.status()
            started = time.perf_counter()
            try:
                await self.execute(item)
            finally:
                self.running = None
            log.info("Prompt executed in %.2f seconds", time.perf_counter() - started)
            await self.status()
            sid = item.extra_data.get("client_id")
            await self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, sid)

    # ---- execution -------------------------------------------------------------------------
    def order(self, prompt: dict[str, Any], outputs: list[str]) -> list[str]:
        done: list[str] = []

        def visit(nid: str) -> None:
            if nid in done:
                return
            inputs = prompt[nid].get("inputs") or {}
            for value in reversed(list(inputs.values())):
                if is_link(value):
                    visit(str(value[0]))
            done.append(nid)

        for out in outputs:
            visit(out)
        return done

    def signature(self, prompt: dict[str, Any], nid: str, memo: dict[str, str], ctx: RunContext) -> str:
        if nid in memo:
            return memo[nid]
        node = prompt[nid]
        parts: dict[str, Any] = {}
        for name, value in (node.get("inputs") or {}).items():
            parts[name] = (
                ["link", self.signature(prompt, str(value[0]), memo, ctx), value[1]]
                if is_link(value)
                else value
            )
        if node["class_type"] in ("LoadImage", "LoadImageMask"):
            path = ctx.input_dir / str(parts.get("image", "")).removesuffix(" [input]")
            try:
                parts["__mtime__"] = path.stat().st_mtime_ns
            except OSError:
                parts["__mtime__"] = None
        memo[nid] = json.dumps([node["class_type"], parts], sort_keys=True, default=str)
        return memo[nid]

    async def execute(self, item: QueueItem) -> None:
        pid = item.prompt_id
        sid = item.extra_data.get("client_id")
        job = self.jobs.setdefault(pid, Job(item))
        job.status = "in_progress"
        job.start = now_ms()
        messages: list[list[Any]] = []
        ctx: RunContext = self.make_context(item)

        async def emit(kind: str, data: dict[str, Any], keep: bool = False) -> None:
            if keep:
                messages.append([kind, data])
            await self.hub.send(kind, data, sid)

        await emit("execution_start", {"prompt_id": pid, "timestamp": now_ms()}, True)
        order = self.order(item.prompt, item.outputs)
        memo: dict[str, str] = {}
        sigs = {nid: self.signature(item.prompt, nid, memo, ctx) for nid in order}
        cached = [nid for nid in item.prompt if nid in sigs and sigs[nid] in self.cache]
        await emit("execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": now_ms()}, True)
        values: dict[str, tuple[Any, ...]] = {}
        states: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        outputs_ui: dict[str, Any] = {}
        meta: dict[str, Any] = {}

        def state(nid: str, value: float, maximum: float, st: str) -> None:
            states[nid] = {
                "value": value,
                "max": maximum,
                "state": st,
                "node_id": nid,
                "prompt_id": pid,
                "display_node_id": nid,
                "parent_node_id": None,
                "real_node_id": nid,
            }

        async def send_states() -> None:
            await emit("progress_state", {"prompt_id": pid, "nodes": json.loads(json.dumps(states))})

        current = ""
        try:
            for nid in order:
                current = nid
                cls = item.prompt[nid]["class_type"]
                info = self.info(cls)
                if sigs[nid] in self.cache:
                    values[nid], ui = self.cache[sigs[nid]]
                    if ui is not None and nid in item.outputs:
                        await emit(
                            "executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid}
                        )
                        outputs_ui[nid] = ui
                        meta[nid] = _meta(nid)
                        state(nid, 1, 1, "finished")
                        await send_states()
                    continue
                if self.interrupt_flag:
                    raise Interrupted
                state(nid, 0.0, 1.0, "running")
                await send_states()
                await emit("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
                last_sent = [0.0, -1.0]

                async def progress(
                    value: int, maximum: int, nid: str = nid, last_sent: list[float] = last_sent
                ) -> None:
                    if self.interrupt_flag:
                        raise Interrupted
                    t = time.monotonic()
                    first_or_last = value in (1, maximum)
                    far = value / maximum - last_sent[1] >= 0.005 and t - last_sent[0] >= 0.1
                    if first_or_last or far:
                        last_sent[0], last_sent[1] = t, value / maximum
                        state(nid, value, maximum, "running")
                        await send_states()
                        await emit(
                            "progress", {"value": value, "max": maximum, "prompt_id": pid, "node": nid}
                        )

                ctx.progress = progress
                inputs = {
                    name: (values[str(v[0])][v[1]] if is_link(v) else v)
                    for name, v in (item.prompt[nid].get("inputs") or {}).items()
                }
                out, ui = await run_node(ctx, cls, info, inputs)
                values[nid] = out
                executed.append(nid)
                self.cache[sigs[nid]] = (out, ui)
                if ui:
                    await emit("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid})
                    outputs_ui[nid] = ui
                    meta[nid] = _meta(nid)
                prev = states[nid]
                state(nid, prev["max"], prev["max"], "finished")
                await send_states()
        except Interrupted:
            data = {
                "prompt_id": pid,
                "node_id": current,
                "node_type": item.prompt[current]["class_type"],
                "executed": executed,
                "timestamp": now_ms(),
            }
            await emit("execution_interrupted", data, True)
            log.info("Processing interrupted")
            self._finish(job, item, messages, {}, {}, "error", False, "cancelled")
            return
        except NodeError as exc:
            data = {
                "prompt_id": pid,
                "node_id": current,
                "node_type": item.prompt[current]["class_type"],
                "executed": executed,
                "exception_message": exc.message,
                "exception_type": exc.exc_type,
                "traceback": exc.traceback,
                "current_inputs": {
                    k: [v] for k, v in (item.prompt[current].get("inputs") or {}).items() if not is_link(v)
                },
                "current_outputs": list(item.prompt),
                "timestamp": now_ms(),
            }
            log.error("!!! Exception during processing !!! %s", exc.message)
            await emit("execution_error", data, True)
            job.error = data
            self._finish(job, item, messages, {}, {}, "error", False, "failed")
            return
        await emit("execution_success", {"prompt_id": pid, "timestamp": now_ms()}, True)
        if self.history_lag:  # ComfyUI records the prompt after that frame (task_done in its worker)
            await asyncio.sleep(self.history_lag)
        self._finish(job, item, messages, outputs_ui, meta, "success", True, "completed")

    def _finish(
        self,
        job: Job,
        item: QueueItem,
        messages: list[list[Any]],
        outputs: dict[str, Any],
        meta: dict[str, Any],
        status_str: str,
        completed: bool,
        job_status: str,
    ) -> None:
        job.end = now_ms()
        job.status = job_status
        job.outputs = outputs
        self.history[item.prompt_id] = {
            "prompt": item.as_list(),
            "outputs": outputs,
            "status": {"status_str": status_str, "completed": completed, "messages": messages},
            "meta": meta,
        }

    # ---- /api/jobs -------------------------------------------------------------------------
    def job_list(self) -> list[dict[str, Any]]:
        out = []
        for job in self.jobs.values():
            if job.item in self.pending:
                status = "pending"
            elif self.running is job.item:
                status = "in_progress"
            else:
                status = job.status
            entry: dict[str, Any] = {
                "id": job.item.prompt_id,
                "status": status,
                "priority": job.item.number,
                "create_time": job.item.extra_data.get("create_time"),
            }
            if status not in ("pending", "in_progress"):
                entry["execution_start_time"] = job.start
                entry["execution_end_time"] = job.end
            if job.error is not None:
                entry["execution_error"] = job.error
            previews = [
                {**img, "nodeId": nid, "mediaType": "images"}
                for nid, ui in job.outputs.items()
                for img in ui.get("images", [])
            ]
            entry["outputs_count"] = len(previews)
            entry["previewable_outputs_count"] = len(previews)
            if previews:
                entry["preview_output"] = previews[0]
            out.append(entry)
        out.sort(key=lambda e: (e["create_time"] or 0, e["priority"]), reverse=True)
        return out


def _meta(nid: str) -> dict[str, Any]:
    return {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}


__all__ = ["Executor", "Hub", "Image", "QueueItem"]
