"""Custom nodes API: the image's and the volume's nodes, and changes to the volume's.

    GET    /api/nodes                         {image: [...], volume: [...], layer, tasks: [...]}
    POST   /api/nodes/install                 {source: git URL[@commit], name?} -> 202 task
    POST   /api/nodes/{name}/update           {ref?} -> 202 task
    DELETE /api/nodes/{name}                  -> 202 task
    GET    /api/nodes/tasks                   {tasks: [...]}
    GET    /api/nodes/tasks/{task_id}         one task with its output lines

Changes run as tasks (nodes/tasks.py); their lines and state are pushed over `/ws` as `node_task`
events, like presets' progress. The name, the source and a clash are checked before the task
starts (400 / 404 / 409 at once). From the dashboard a node comes from a git URL only (a local
path would copy the server's own folders); the CLI also takes folders and archives. install.py is
never run from here: that takes `comfyui-docker nodes install --allow-install-script`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ...errors import Conflict, NotFound
from ...nodes import report
from ...nodes.names import check_name, node_path
from ...nodes.service import NodeService
from ...nodes.sources import default_name, parse_source
from ...nodes.tasks import NodeTasks
from ...services import Services
from ..deps import ServicesDep
from ..errors import COMMON_ERRORS, error_responses

router = APIRouter(prefix="/api/nodes", tags=["nodes"], responses=error_responses(*COMMON_ERRORS, 503))

NodeName = Annotated[str, PathParam(max_length=100, description="a volume node's folder name")]
TaskId = Annotated[str, PathParam(pattern=r"^[a-f0-9]{1,32}$")]


class InstallRequest(BaseModel):
    source: str = Field(max_length=2000, examples=["https://github.com/owner/ComfyUI-Node@0123abc"])
    name: str | None = Field(default=None, max_length=100)


class UpdateRequest(BaseModel):
    ref: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def node_services(svc: Services) -> tuple[NodeService, NodeTasks]:
    """The runtime's node service and tasks (made here when the app runs without `start`)."""
    if svc.nodes is None:
        svc.nodes = NodeService(svc.settings, svc.workspace)
    if svc.node_tasks is None:
        svc.node_tasks = NodeTasks(svc.bus)
    return svc.nodes, svc.node_tasks


async def get_node_services(svc: ServicesDep) -> tuple[NodeService, NodeTasks]:
    return node_services(svc)


NodesDep = Annotated[tuple[NodeService, NodeTasks], Depends(get_node_services)]


def _busy(tasks: NodeTasks, name: str) -> None:
    if tasks.busy(name):
        raise Conflict(f"'{name}' is being changed by another task", hint="wait for it to finish")


@router.get("", summary="The image's and the volume's custom nodes, with their import state")
async def list_nodes(nodes: NodesDep) -> dict[str, Any]:
    service, tasks = nodes
    status = await report.status(service)
    status["tasks"] = [t.to_dict() for t in tasks.list()]
    return status


@router.post(
    "/install",
    status_code=202,
    summary="Install a node from a git URL into the volume (a task)",
    responses=error_responses(400, 409),
)
async def install(body: InstallRequest, nodes: NodesDep) -> dict[str, Any]:
    service, tasks = nodes
    source = parse_source(body.source, git_only=True)
    await service.image_env()  # 503 now, not a failed task, when there is no ComfyUI to install for
    name = check_name(body.name) if body.name else default_name(source)
    path = node_path(service.volume_dir, service.workspace.root, name, must_exist=False)
    if path.exists() or path.is_symlink():
        raise Conflict(f"a node named '{name}' is already on the volume", hint="update it instead")
    _busy(tasks, name)
    task = tasks.start(
        "install", name, lambda on_line: service.install(body.source, name=name, on_line=on_line)
    )
    return task.to_dict()


@router.post(
    "/{name}/update",
    status_code=202,
    summary="Update a volume node (git: fetch and check out the newest commit or `ref`)",
    responses=error_responses(400, 404, 409),
)
async def update(name: NodeName, nodes: NodesDep, body: UpdateRequest | None = None) -> dict[str, Any]:
    service, tasks = nodes
    node_path(service.volume_dir, service.workspace.root, name)
    _busy(tasks, name)
    ref = body.ref if body is not None else None
    task = tasks.start("update", name, lambda on_line: service.update(name, ref=ref, on_line=on_line))
    return task.to_dict()


@router.delete(
    "/{name}", status_code=202, summary="Remove a volume node", responses=error_responses(400, 404, 409)
)
async def remove(name: NodeName, nodes: NodesDep) -> dict[str, Any]:
    service, tasks = nodes
    node_path(service.volume_dir, service.workspace.root, name)
    _busy(tasks, name)
    task = tasks.start("remove", name, lambda on_line: service.remove(name, on_line=on_line))
    return task.to_dict()


@router.get("/tasks", summary="Recent node tasks")
async def list_tasks(nodes: NodesDep) -> dict[str, Any]:
    return {"tasks": [t.to_dict() for t in nodes[1].list()]}


@router.get("/tasks/{task_id}", summary="One node task with its output", responses=error_responses(404))
async def get_task(task_id: TaskId, nodes: NodesDep) -> dict[str, Any]:
    task = nodes[1].get(task_id)
    if task is None:
        raise NotFound(f"no node task {task_id}", hint="see GET /api/nodes/tasks")
    return task.to_dict()
