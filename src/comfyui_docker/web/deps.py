"""Dependencies: the long-lived services, handed to routes (no globals, nothing at import time).

    ServicesDep      the `Services` of this app (from `create_app` / the lifespan)
    PresetsDep       the PresetService, or 503 when it is not available
    GatewayDep       the ComfyUI gateway, once ComfyUI can take requests (503 with its state before)
    WorkflowsDep     the workflow use case (prepare, missing models, install, submit)
    AuthInfoDep      password_set / auth method / csrf token of this request (for pages)

`comfyui_status(services)` says whether ComfyUI can take requests now; routes that need it call
`require_comfyui(services)`, which raises a 503 carrying the state instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from ..errors import Forbidden, ServiceUnavailable
from ..services import Services

if TYPE_CHECKING:  # the workflow tools are imported on first use, not at start-up
    from ..comfyui import ComfyUIGateway
    from ..workflows.service import WorkflowService

READY_STATES = frozenset({"running", "ready"})
#: Without a supervisor in this process (a laptop, tests) the proxy simply tries ComfyUI.
UNMANAGED = "unmanaged"


async def get_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_presets(svc: ServicesDep) -> Any:
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


PresetsDep = Annotated[Any, Depends(get_presets)]


@dataclass(frozen=True)
class AuthInfo:
    password_set: bool
    method: str  # open | session | token | none
    csrf_token: str | None


async def get_auth_info(request: Request) -> AuthInfo:
    state = request.state
    return AuthInfo(
        password_set=bool(getattr(state, "password_set", False)),
        method=str(getattr(state, "auth_method", "open")),
        csrf_token=getattr(state, "csrf_token", None),
    )


AuthInfoDep = Annotated[AuthInfo, Depends(get_auth_info)]


def _text(value: Any) -> str:
    value = getattr(value, "value", value)
    return str(value) if value is not None else ""


def comfyui_status(svc: Services) -> dict[str, Any]:
    """{"state", "detail", "ready"} of ComfyUI as the supervisor sees it."""
    sup = svc.supervisor
    if sup is None:
        if not svc.settings.comfyui_installed and svc.settings.comfyui_root is not None:
            return {
                "state": "not_installed",
                "detail": f"no main.py in {svc.settings.comfyui_root}",
                "ready": False,
            }
        return {"state": UNMANAGED, "detail": "not supervised by this process", "ready": True}
    st: Any = None
    func = getattr(sup, "status", None)
    if callable(func):
        try:
            st = func("comfyui")
        except (KeyError, LookupError, ValueError):
            return {"state": "not_installed", "detail": "ComfyUI is not supervised", "ready": False}
    if isinstance(st, dict):
        state, detail = _text(st.get("state")), _text(st.get("detail"))
    elif isinstance(st, str):
        state, detail = st, ""
    elif st is not None and hasattr(st, "state"):
        state, detail = _text(st.state), _text(getattr(st, "detail", ""))
    else:
        state, detail = _text(st) or "unknown", ""
    return {"state": state, "detail": detail, "ready": state in READY_STATES}


def require_comfyui(svc: Services) -> dict[str, Any]:
    status = comfyui_status(svc)
    if not status["ready"]:
        raise ServiceUnavailable(
            f"ComfyUI is {status['state']}",
            hint=status["detail"] or "wait until it is running (the dashboard shows its state)",
            state=status["state"],
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
