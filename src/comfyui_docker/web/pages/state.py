"""What the pages read from the long-lived services, in one place.

Subsystems land independently (supervisor, presets, ComfyUI client); every accessor here
answers honestly when its service is absent ("not installed", "not started", no tasks)
instead of inventing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ... import __version__
from ...services import Services
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
    """The token htmx and fetch send back on changes (see web/auth.py); empty without auth."""
    token = getattr(request.state, "csrf_token", None)
    if token:
        return str(token)
    try:
        from .. import auth
    except ImportError:
        return ""
    func = getattr(auth, "csrf_token", None)
    if callable(func):
        try:
            return str(func(request) or "")
        except Exception:
            return ""
    return ""


def _supervised(svc: Services, name: str) -> ServiceView | None:
    sup = svc.supervisor
    if sup is None:
        return None
    for attr in ("status", "state_of", "get"):
        func = getattr(sup, attr, None)
        if callable(func):
            try:
                st = func(name)
            except (KeyError, LookupError, ValueError):
                return None
            if st is None:
                return None
            if isinstance(st, str):
                return ServiceView(name, st)
            if isinstance(st, dict):
                raw, detail, pid = st.get("state"), st.get("detail", ""), st.get("pid")
            else:
                raw, detail, pid = (
                    getattr(st, "state", None),
                    getattr(st, "detail", ""),
                    getattr(st, "pid", None),
                )
            text = getattr(raw, "value", raw)
            return ServiceView(name, str(text or "unknown"), str(detail or ""), pid)
    return None


def comfyui_state(svc: Services) -> ServiceView:
    """ComfyUI's state, worded like the API's `GET /api/service/comfyui`."""
    st = comfyui_status(svc)
    text = str(st.get("state") or "unknown").replace("_", " ")
    detail = str(st.get("detail") or "")
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
    """Install tasks as plain dicts (newest last); [] when the preset service is absent."""
    presets = svc.presets
    if presets is None:
        return []
    for attr in ("list_tasks", "tasks"):
        func = getattr(presets, attr, None)
        if func is None:
            continue
        items = func() if callable(func) else func
        if isinstance(items, dict):
            items = list(items.values())
        out: list[dict[str, Any]] = []
        for item in items or []:
            if isinstance(item, dict):
                out.append(item)
            elif hasattr(item, "to_dict"):
                out.append(item.to_dict())
            elif hasattr(item, "__dict__"):
                out.append(dict(vars(item)))
        return out
    return []


def active_task_count(svc: Services) -> int:
    try:
        return sum(1 for t in tasks(svc) if str(t.get("state", t.get("status", ""))) in ACTIVE_TASK_STATES)
    except Exception:
        return 0
