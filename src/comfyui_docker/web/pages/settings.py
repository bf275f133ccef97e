"""Settings: download tokens, start-up presets, parallel downloads, API token, password state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import user_settings
from ...errors import AppError
from ...services import Services
from ..auth import request_auth
from ..dashboard import dashboard_of
from .rendering import render, services

router = APIRouter()


def api_token(request: Request) -> str:
    """The bearer token API clients use (API_TOKEN, or derived from the password: web/auth/)."""
    return dashboard_of(request).auth.api_token() or ""


def _preset_ids(svc: Services) -> list[str]:
    return sorted(svc.presets.catalog.presets) if svc.presets is not None else []


def _sessions(request: Request) -> list[dict[str, Any]]:
    """The logged-in browsers of this volume (server-side sessions), newest first."""
    auth = dashboard_of(request).auth
    if not auth.enabled:
        return []
    found = request_auth(request.scope)
    return list(auth.sessions.list(found.session_id if found is not None else None))


def _env_hosts(request: Request, effective: tuple[str, ...]) -> list[str]:
    """The hosts from the environment (MODEL_HOSTS), before the ones saved here are added."""
    base = dashboard_of(request).settings.model_hosts
    return [h for h in effective if h in base] or list(base)


def _context(
    request: Request, svc: Services, values: user_settings.UserSettings, **extra: Any
) -> dict[str, Any]:
    s = svc.settings
    token = api_token(request) if s.password_set else ""
    return {
        "sessions": _sessions(request),
        "title": "Settings",
        "values": values,
        "masked": {
            "hf_token": user_settings.mask(values.hf_token),
            "civitai_token": user_settings.mask(values.civitai_token),
        },
        "env_tokens": {"hf_token": bool(s.hf_token), "civitai_token": bool(s.civitai_token)},
        "env_presets": s.startup_presets,
        "default_parallel": s.download_parallel_files,
        "env_hosts": _env_hosts(request, s.model_hosts),
        "api_token": token,
        "api_token_masked": user_settings.mask(token),
        "preset_ids": _preset_ids(svc),
        "settings_path": str(svc.workspace.user_settings),
        "errors": {},
        "notice": "",
        "load_error": None,
        **extra,
    }


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> HTMLResponse:
    svc = services(request)
    try:
        values = user_settings.load(svc.workspace.user_settings)
        load_error = None
    except AppError as exc:
        values, load_error = user_settings.UserSettings(), exc
    return render(request, "settings.html", _context(request, svc, values, load_error=load_error))


@router.post("/settings", response_class=HTMLResponse)
async def settings_save(request: Request) -> HTMLResponse:
    svc = services(request)
    form = dict((await request.form()).items())
    try:
        current = user_settings.load(svc.workspace.user_settings)
    except AppError:
        current = user_settings.UserSettings()  # a broken file is replaced by what is submitted
    values, errors = user_settings.merge_form(current, form)
    if errors:
        ctx = _context(request, svc, current, errors=errors, submitted=form)
        return render(request, "settings.html", ctx, block="settings_form", status_code=422)
    user_settings.save(svc.workspace.user_settings, values)
    # applied over the environment's settings, so a removed token or host is gone at once
    svc.update_settings(user_settings.apply(dashboard_of(request).settings, values))
    notice = (
        f"Saved to {svc.workspace.user_settings}. Tokens and model hosts apply to the next "
        "download; start-up presets and parallel downloads at the next start."
    )
    ctx = _context(request, svc, values, notice=notice)
    return render(request, "settings.html", ctx, block="settings_form")
