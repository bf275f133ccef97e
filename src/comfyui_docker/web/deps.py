"""Dependencies: the long-lived services, handed to routes (no globals, nothing at import time).

    DashboardDep     this app's `Dashboard` (dashboard.py: services, auth, sampler, ...)
    ServicesDep      the `Services` of this app (from `create_app` / the lifespan)
    PresetsDep       the preset service, or 403 (disabled) / 503 (not running)
    GatewayDep       the ComfyUI gateway, once ComfyUI can take requests (503 with its state before)
    WorkflowsDep     the workflow use case (prepare, missing models, install, submit)

`comfyui_status(services)` says whether ComfyUI can take requests now (with one ComfyUI per GPU:
whether any of them can, instance_views.py); routes that need it call
`require_comfyui(services)`, which raises a 503 carrying the state instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from ..errors import Forbidden, ServiceUnavailable
from ..instance_views import instance_views, overall
from ..services import Presets, Services
from ..supervisor.states import State
from .dashboard import Dashboard, dashboard_of

if TYPE_CHECKING:  # the workflow tools are imported on first use, not at start-up
    from ..comfyui import ComfyUIGateway
    from ..workflows.service import WorkflowService

#: Without a supervisor in this process (a laptop, tests) the proxy simply tries ComfyUI.
UNMANAGED = "unmanaged"


async def get_dashboard(request: Request) -> Dashboard:
    return dashboard_of(request)


DashboardDep = Annotated[Dashboard, Depends(get_dashboard)]


async def get_services(request: Request) -> Services:
    return dashboard_of(request).services


ServicesDep = Annotated[Services, Depends(get_services)]


def presets_of(svc: Services) -> Presets:
    """The preset service; 403 when the preset manager is off, 503 when it did not start."""
    if not svc.settings.enable_preset_manager:
        raise Forbidden(
            "the preset manager is disabled", hint="set ENABLE_PRESET_MANAGER=true to install presets"
        )
    if svc.presets is None:
        raise ServiceUnavailable(
            "the preset service is not running",
            hint="see workspace/logs/dashboard.log for why the catalog did not load",
            state="not started",
        )
    return svc.presets


async def get_presets(svc: ServicesDep) -> Presets:
    return presets_of(svc)


PresetsDep = Annotated[Presets, Depends(get_presets)]


@dataclass(frozen=True)
class ComfyUIStatus:
    """ComfyUI's state as this process sees it: the supervisor's word, or `unmanaged` without one."""

    state: str
    detail: str
    ready: bool

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "ready": self.ready}


def comfyui_status(svc: Services) -> ComfyUIStatus:
    sup = svc.supervisor
    if sup is None:
        if not svc.settings.comfyui_installed and svc.settings.comfyui_root is not None:
            return ComfyUIStatus("not_installed", f"no main.py in {svc.settings.comfyui_root}", False)
        return ComfyUIStatus(UNMANAGED, "not supervised by this process", True)
    names = svc.instance_names()
    if len(names) > 1:  # one per GPU: ready while any runs (new prompts go to the running ones)
        state, detail = overall(instance_views(svc))
        return ComfyUIStatus(state, detail, state == State.RUNNING.value)
    try:
        status = sup.status(names[0])
    except KeyError:
        return ComfyUIStatus("not_installed", "ComfyUI is not supervised", False)
    return ComfyUIStatus(status.state.value, status.detail, status.state is State.RUNNING)


def require_comfyui(svc: Services) -> ComfyUIStatus:
    status = comfyui_status(svc)
    if not status.ready:
        raise ServiceUnavailable(
            f"ComfyUI is {status.state}",
            hint=status.detail or "wait until it is running (the dashboard shows its state)",
            state=status.state,
        )
    return status


def gateway(svc: Services) -> ComfyUIGateway:
    """The gateway, when ComfyUI can take requests now; else a 503 carrying its state."""
    require_comfyui(svc)
    if svc.comfyui is None:
        raise ServiceUnavailable(
            "ComfyUI is not connected yet", hint="try again in a moment", state="starting"
        )
    return svc.comfyui


async def get_gateway(svc: ServicesDep) -> ComfyUIGateway:
    return gateway(svc)


GatewayDep = Annotated["ComfyUIGateway", Depends(get_gateway)]


def workflows(svc: Services) -> WorkflowService:
    """The workflow use case over this process's gateway, presets and kept node definitions."""
    from ..workflows.object_info import ObjectInfoStore
    from ..workflows.service import WorkflowService

    if svc.object_info is None:
        svc.object_info = ObjectInfoStore(svc.workspace.cache)
    return WorkflowService(
        definitions=svc.object_info,
        models_root=svc.workspace.models,
        gateway=svc.comfyui,
        presets=svc.presets,
        model_hosts=svc.settings.model_hosts,
    )


async def get_workflows(svc: ServicesDep) -> WorkflowService:
    return workflows(svc)


WorkflowsDep = Annotated["WorkflowService", Depends(get_workflows)]
