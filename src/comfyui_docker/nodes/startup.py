"""The start-up phase for the volume's custom nodes (before ComfyUI), and what it leaves for later.

    probe ComfyUI's Python -> its layer (key, constraints, the .pth hook) -> ComfyUI-Manager on pip
    -> each volume node's requirements hash against the layer's state.json

Unchanged requirements cost nothing but a few small file reads (the hash cache). A node whose
hash is new (copied onto the volume by hand, installed by ComfyUI-Manager, or the image changed)
is checked in ComfyUI's Python (reqcheck.py, one subprocess for all) and only what is missing goes
through pip. That work is bounded by `budget` seconds, lock wait included; what is left runs in
the background (`finish`) and ComfyUI restarts when it is done. A new layer (another Python or
torch: a new image) is filled in the background from the start, and says so.

A node whose install failed is left out of ComfyUI's start (`NodeService.whitelist_args`) and
reported; ComfyUI starts anyway. A conflict with the image is final until the node's requirements
change; any other failure (network, a timeout) is tried again at the next start. Nodes still
waiting for the background are loaded (their requirements may well be there already).

Two runtimes on one volume: the volume lock makes one install and the other wait (and then find
the work done in state.json).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AppError
from ..services import Services
from . import manager, reqcheck
from .image import shares_dashboard_python
from .inventory import NodeInfo
from .layer import Layer, NodeRecord
from .pip import LineSink, PipResult, pip_install
from .service import NodeService
from .tasks import NodeTasks

log = logging.getLogger("comfyui_docker.nodes")
START_BUDGET = 60.0


@dataclass
class StartPlan:
    layer: Layer | None = None
    nodes: int = 0
    checked: list[str] = field(default_factory=list)  # needed a look this time
    installed: list[str] = field(default_factory=list)  # pip ran for them and succeeded
    left_out: list[str] = field(default_factory=list)
    pending: list[NodeInfo] = field(default_factory=list)  # for the background
    failed: dict[str, str] = field(default_factory=dict)
    new_layer: bool = False
    waited: bool = False
    problems: list[str] = field(default_factory=list)

    def variables(self) -> dict[str, str]:
        return self.layer.variables() if self.layer is not None else {}

    @property
    def detail(self) -> str:
        if self.layer is None:
            return "; ".join(self.problems) or "no layer"
        parts = [f"{self.nodes} volume node(s)", f"layer {self.layer.key}"]
        if self.checked:
            parts.append(f"{len(self.checked)} checked")
        if self.installed:
            parts.append(f"{len(self.installed)} installed")
        if self.left_out:
            parts.append(f"{len(self.left_out)} left out: {', '.join(self.left_out)}")
        if self.pending and self.new_layer:
            parts.append(f"new layer: {len(self.pending)} node(s) reinstalled in the background")
        elif self.pending:
            parts.append(f"{len(self.pending)} in the background")
        if self.waited:
            parts.append("waited for another runtime")
        return ", ".join(parts)


def _due(nodes: list[NodeInfo], layer: Layer) -> list[NodeInfo]:
    records = layer.read_state()
    out = []
    for node in nodes:
        rec = records.get(node.name)
        current = node.requirements_hash(layer.image.fingerprint)
        if rec is None or rec.hash != current or (not rec.ok and not rec.conflict):
            out.append(node)
    return out


def _record(layer: Layer, node: NodeInfo, result: PipResult | None) -> None:
    layer.record(
        node.name,
        NodeRecord(
            hash=node.requirements_hash(layer.image.fingerprint),
            ok=result is None or result.ok,
            error="" if result is None else result.message,
            conflict=bool(result is not None and result.conflict),
            by=f"{socket.gethostname()}:{os.getpid()}",
        ),
    )


async def prepare(
    service: NodeService,
    *,
    budget: float = START_BUDGET,
    on_line: LineSink | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StartPlan:
    """The phase: returns the layer for ComfyUI's environment, the nodes left out, the rest for later."""
    deadline = clock() + budget
    plan = StartPlan()
    say = on_line or (lambda line: log.info("custom nodes: %s", line))
    try:
        image = await service.image_env()
    except AppError as exc:
        plan.problems.append(str(exc))
        return plan
    layer = plan.layer = Layer(service.workspace.python, image)
    layer.ensure()
    layer.dedupe()  # what ComfyUI-Manager's upgrades in the layer left behind
    if service.hook_problem:
        plan.problems.append(service.hook_problem)
    try:
        manager.ensure_pip(service.workspace.user)
    except OSError as exc:
        plan.problems.append(f"ComfyUI-Manager's config cannot be set to pip: {exc}")
    nodes = [n for n in service.volume_nodes() if n.is_package]
    plan.nodes = len(nodes)
    todo = _due(nodes, layer)
    if todo and layer.is_new:
        plan.new_layer = True
        plan.pending = todo
        say(
            f"new package layer {layer.key} for this image: the requirements of {len(todo)} node(s) are "
            "reinstalled in the background; ComfyUI restarts when they are in"
        )
    elif todo:
        lock = service.lock()
        try:
            await lock.acquire(timeout=max(0.0, deadline - clock()))
        except TimeoutError:
            plan.waited, plan.pending = True, todo
            say(
                "another runtime is installing node requirements on this volume: continuing in the background"
            )
        else:
            plan.waited = lock.waited
            try:
                todo = _due(nodes, layer)  # the other runtime may have done it meanwhile
                plan.checked = [n.name for n in todo]
                plan.pending = await work(service, layer, todo, plan, say, deadline=deadline, clock=clock)
            finally:
                await lock.release()
    plan.left_out = service.left_out(layer)
    for name in plan.left_out:
        log.warning("custom node %s is left out of ComfyUI's start: %s", name, layer.read_state()[name].error)
    return plan


async def work(
    service: NodeService,
    layer: Layer,
    todo: list[NodeInfo],
    plan: StartPlan,
    say: LineSink,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    combined: bool = False,
) -> list[NodeInfo]:
    """Check and install `todo` (under the lock). Returns what the deadline left undone."""
    with_req = []
    for node in todo:
        if node.requirements is None:
            _record(layer, node, None)
        else:
            with_req.append(node)
    states = await reqcheck.check(
        layer, [n.requirements for n in with_req if n.requirements], base_env=service.env
    )
    missing = []
    for node in with_req:
        state = states.get(node.requirements) if node.requirements else None
        if state is not None and state.met:
            _record(layer, node, None)
        else:
            missing.append(node)
    if combined and len(missing) > 1:
        say(f"installing the requirements of {len(missing)} nodes in one pip run")
        files = [n.requirements for n in missing if n.requirements]
        result = await pip_install(
            layer, files, on_line=say, timeout=service.pip_timeout, base_env=service.env
        )
        if result.ok:
            for node in missing:
                _record(layer, node, None)
                plan.installed.append(node.name)
            return []
    left: list[NodeInfo] = []
    for node in missing:
        remaining = service.pip_timeout if deadline is None else deadline - clock()
        if remaining <= 0:
            left.append(node)
            continue
        assert node.requirements is not None
        say(f"installing {node.name}'s requirements")
        result = await pip_install(
            layer, [node.requirements], on_line=say, timeout=remaining, base_env=service.env
        )
        if result.timed_out and deadline is not None:
            left.append(node)  # not a failure: the background goes on from here
            continue
        _record(layer, node, result)
        if result.ok:
            plan.installed.append(node.name)
        else:
            plan.failed[node.name] = result.message
            say(f"{node.name}: {result.message}")
    return left


async def finish(service: NodeService, plan: StartPlan, on_line: LineSink | None = None) -> list[str]:
    """The background part: install what the phase left (under the lock, no deadline).
    Returns the nodes that can now be loaded (their requirements are in)."""
    say = on_line or (lambda line: log.info("custom nodes: %s", line))
    if plan.layer is None or not plan.pending:
        return []
    layer = plan.layer
    async with service.lock():
        todo = _due(plan.pending, layer)
        if todo:
            await work(service, layer, todo, plan, say, combined=True)
    ready = [n.name for n in plan.pending if n.name not in service.left_out(layer)]
    say(f"requirements done for {len(ready)} of {len(plan.pending)} node(s) in {layer.key}")
    plan.pending = []
    plan.left_out = service.left_out(layer)
    return ready


# ---- the runtime's side: the phase, the background task, the restart ----------------------------
async def run_phase(services: Services) -> StartPlan:
    """The `custom nodes` phase of `comfyui-docker start` (services.nodes / node_tasks made here)."""
    settings = services.settings
    if not settings.comfyui_installed:
        return StartPlan(problems=["ComfyUI is not installed"])
    if shares_dashboard_python(settings.comfyui_python):
        return StartPlan(problems=["ComfyUI runs in the dashboard's own venv: no package layer"])
    services.nodes = NodeService(settings, services.workspace)
    services.node_tasks = NodeTasks(services.bus)
    try:
        return await prepare(services.nodes)
    except (AppError, OSError) as exc:  # ComfyUI starts anyway, without the layer
        log.error("custom nodes: %s; ComfyUI starts without the volume's packages", exc)
        return StartPlan(problems=[str(exc)])


def start_background(services: Services, plan: StartPlan) -> None:
    """What the phase left, as a `requirements` task; ComfyUI restarts (when idle) once it is done."""
    nodes = services.nodes
    if not plan.pending or plan.layer is None or services.node_tasks is None or nodes is None:
        return

    async def runner(on_line: LineSink) -> dict[str, Any]:
        before = len(plan.installed)
        ready = await finish(nodes, plan, on_line)
        # ComfyUI already runs with these nodes: it needs a restart only when packages came in
        # meanwhile (installed here, or by the other runtime the phase waited for)
        changed = len(plan.installed) > before or plan.waited
        restarted = bool(ready) and changed and await restart_when_idle(services, on_line)
        return {"ready": ready, "restarted": restarted}

    services.node_tasks.start("requirements", plan.layer.key, runner)


async def restart_when_idle(services: Services, on_line: LineSink) -> bool:
    """Restart ComfyUI (every instance, with one per GPU) so it loads the nodes, unless it is busy
    with a prompt (then say so)."""
    supervisor = services.supervisor
    if supervisor is None:
        return False
    states: dict[str, str] = {}
    for name in services.instance_names():
        try:
            states[name] = supervisor.status(name).state.value
        except KeyError:  # not supervised here
            continue
    if not states:
        return False
    live = [name for name, state in states.items() if state in ("running", "starting", "backoff")]
    if not live:
        on_line(f"ComfyUI is {next(iter(states.values()))}: start it to load the nodes")
        return False
    if "running" in (states[name] for name in live) and services.comfyui is not None:
        try:
            queue = await services.comfyui.queue()
            busy = len(queue.running) + len(queue.pending)
        except Exception:  # cannot ask: do not interrupt anything
            busy = 1
        if busy:
            on_line("ComfyUI is busy: restart it (dashboard or `comfyui-docker restart`) to load the nodes")
            return False
    on_line("restarting ComfyUI to load the nodes")
    await asyncio.gather(*(supervisor.restart(name) for name in live))
    return True
