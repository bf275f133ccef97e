"""`comfyui-docker start` in-process with the fake ComfyUI run by the stand-in image venv: the
volume's nodes get their packages from the layer, a node that fails to import does not stop
ComfyUI and shows as failed with its exception, a node whose requirements conflict is left out,
and the dashboard's /api/nodes says all of it. A restart re-reads the volume's nodes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from comfyui_docker import startup
from comfyui_docker.gpu import GpuReport
from comfyui_docker.nodes.service import NodeService
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor import State, Timings
from comfyui_docker.workspace import Workspace
from fakes.comfyui_root.launch import free_port

from .kit import node_folder

FAST = Timings(
    start_grace=0.5, ready_timeout=20, poll_interval=0.05, retries=1, backoff_base=0.1, stop_sigint=2
)
USES_LAYER = """\
import nodepkg

class UsesLayer:
    DESCRIPTION = nodepkg.__file__
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    def run(self):
        return (1,)

NODE_CLASS_MAPPINGS = {"UsesLayer": UsesLayer}
"""


async def no_gpu(settings: Settings) -> GpuReport:
    return GpuReport(verdict="no_gpu", message="no NVIDIA GPU is visible (test)")


@contextlib.asynccontextmanager
async def running(settings: Settings, ready_timeout: float = 30) -> AsyncIterator[Services]:
    services = Services.create(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        startup.run(
            settings,
            stop=stop,
            preflight=no_gpu,
            echo_children=False,
            services=services,
            comfyui_timings=dataclasses.replace(FAST, ready_timeout=ready_timeout),
        )
    )
    try:
        for _ in range(int(ready_timeout * 20)):
            await asyncio.sleep(0.05)
            if task.done():
                raise AssertionError(f"start ended early: {task.result()}")
            sup = services.supervisor
            if sup is not None and "comfyui" in sup.services and sup.status("comfyui").state == State.RUNNING:
                break
        else:
            raise AssertionError("ComfyUI did not start")
        yield services
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def comfy_get(settings: Settings, path: str) -> Any:
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.comfyui_internal_port}") as client:
        return client.get(path).json()


async def test_nodes_at_start(
    make_settings: Callable[..., Settings], offline: dict[str, str], tmp_path: Path
) -> None:
    settings = make_settings(
        DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(free_port()), COMFYUI_INTERNAL_PORT=str(free_port())
    )
    ws = Workspace(settings.workspace_root)
    ws.init()
    node_folder(ws.custom_nodes, "uses_layer", requirements="nodepkg\n", init=USES_LAYER)
    node_folder(ws.custom_nodes, "breaks", init="raise RuntimeError('this node is broken on purpose')\n")
    node_folder(ws.custom_nodes, "old_torch", requirements="wantstorch\n")
    node_folder(ws.custom_nodes, "seed")
    # a layer that has seen a start before (a brand-new one is filled in the background)
    (await NodeService(settings, ws).layer()).write_state({})

    async with running(settings) as services:
        timing = next(t for t in services.timings if t.name == "custom nodes")
        assert "1 installed" in timing.detail and "left out: old_torch" in timing.detail
        argv = services.supervisor.get("comfyui").spec.argv
        assert "--disable-all-custom-nodes" in argv and "old_torch" not in argv
        assert comfy_get(settings, "/object_info/UsesLayer")["UsesLayer"]["description"].startswith(
            str(ws.python)
        )
        url = f"http://127.0.0.1:{settings.dashboard_port}"
        async with httpx.AsyncClient(base_url=url) as client:
            nodes = (await client.get("/api/nodes")).json()
        by = {n["name"]: n for n in nodes["volume"]}
        assert by["uses_layer"]["import"]["state"] == "ok" and by["uses_layer"]["packages"]["state"] == "ok"
        assert by["breaks"]["import"] == {"state": "failed", "error": "this node is broken on purpose"}
        assert by["old_torch"]["import"]["state"] == "not_loaded"
        assert (
            by["old_torch"]["packages"]["state"] == "failed"
            and "torch==2.0.0" in by["old_torch"]["packages"]["error"]
        )

        # the conflict is fixed on the volume; a restart picks the node up again
        (ws.custom_nodes / "old_torch" / "requirements.txt").write_text("")
        from comfyui_docker.nodes.startup import prepare

        await prepare(services.nodes)
        await services.supervisor.restart("comfyui")
        await services.supervisor.get("comfyui").wait_state(State.RUNNING, timeout=30)
        assert "--disable-all-custom-nodes" not in services.supervisor.get("comfyui").spec.argv
        assert "OldTorch" in comfy_get(settings, "/object_info/OldTorch")
    log = (ws.logs / "comfyui.log").read_text()
    assert "RuntimeError: this node is broken on purpose" in log  # the traceback the page sums up


async def test_a_new_layer_is_filled_in_the_background_then_comfyui_restarts(
    make_settings: Callable[..., Settings], offline: dict[str, str]
) -> None:
    settings = make_settings(
        DASHBOARD_HOST="127.0.0.1", DASHBOARD_PORT=str(free_port()), COMFYUI_INTERNAL_PORT=str(free_port())
    )
    ws = Workspace(settings.workspace_root)
    ws.init()
    node_folder(ws.custom_nodes, "uses_layer", requirements="nodepkg\n", init=USES_LAYER)
    async with running(settings) as services:
        timing = next(t for t in services.timings if t.name == "custom nodes")
        assert "new layer: 1 node(s) reinstalled in the background" in timing.detail
        comfyui = services.supervisor.get("comfyui")
        task = next(t for t in services.node_tasks.list() if t.action == "requirements")
        for _ in range(400):
            if task.state != "running" and comfyui.restarts == 1 and comfyui.state == State.RUNNING:
                break
            await asyncio.sleep(0.05)
        assert task.state == "done", task.to_dict()
        assert task.result == {"ready": ["uses_layer"], "restarted": True}
        assert any("restarting ComfyUI to load the nodes" in line for line in task.lines)
        assert comfy_get(settings, "/object_info/UsesLayer")["UsesLayer"]["description"].startswith(
            str(ws.python)
        )
