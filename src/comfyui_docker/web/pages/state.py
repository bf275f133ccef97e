"""What the pages read from the long-lived services, in one place.

Every accessor answers honestly when its service is absent (no supervisor in this process, no
preset service): "not installed", "not started", no tasks, instead of inventing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ... import __version__
from ...services import Services
from ..auth import request_auth
from ..deps import UNMANAGED, comfyui_status

ACTIVE_TASK_STATES = frozenset({"queued", "downloading", "verifying", "running", "pending"})


@dataclass(frozen=True)
class ServiceView:
    name: str
    state: str
    detail: str = ""
    pid: int | None = None

    @property
    def tone(self) -> str:
        if self.state in {"running", "ready", "healthy"}:
            return "ok"
        if self.state in {"starting", "stopping", "restarting", "backoff", "not started"}:
            return "warn"
        if self.state in {"not installed", "disabled", "off", UNMANAGED}:
            return ""
        return "err"


def version() -> str:
    return __version__


def csrf_token(request: Request) -> str:
    """The token htmx and fetch send back on changes (see web/auth/); empty without a session."""
    found = request_auth(request.scope)
    return (found.csrf_token or "") if found is not None else ""


def _supervised(svc: Services, name: str) -> ServiceView | None:
    if svc.supervisor is None:
        return None
    try:
        status = svc.supervisor.status(name)
    except KeyError:
        return None
    return ServiceView(name, status.state.value, status.detail, status.pid)


def comfyui_state(svc: Services) -> ServiceView:
    """ComfyUI's state, worded like the API's `GET /api/service/comfyui`."""
    st = comfyui_status(svc)
    text = (st.state or "unknown").replace("_", " ")
    detail = st.detail
    if text == UNMANAGED:
        detail = detail or "not supervised by this process"
    elif text == "not installed" and not detail:
        detail = "set COMFYUI_ROOT to a ComfyUI checkout"
    return ServiceView("comfyui", text, detail)


def nginx_state(svc: Services) -> ServiceView:
    found = _supervised(svc, "nginx")
    if found is not None:
        return found
    if not svc.settings.enable_nginx:
        return ServiceView("nginx", "off", "ENABLE_NGINX=false: the dashboard listens directly")
    return ServiceView("nginx", "not started")


def tasks(svc: Services) -> list[dict[str, Any]]:
    """Install tasks as plain dicts; [] when the preset service is absent."""
    return [t.to_dict() for t in svc.presets.tasks()] if svc.presets is not None else []


def active_task_count(svc: Services) -> int:
    return sum(1 for t in tasks(svc) if t.get("state") in ACTIVE_TASK_STATES)
