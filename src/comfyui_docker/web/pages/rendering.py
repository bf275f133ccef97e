"""Render a page or its htmx fragment from one template.

A normal request gets the whole page (the template extends `base.html`). An htmx request
(`HX-Request: true`, not a boosted navigation) gets only one block of the same template: the
block named like the element htmx swaps (`HX-Target`, dashes read as underscores) when there
is one, else `content`. Every answer carries `Vary: HX-Request` so a cache never serves a
fragment for a page or the reverse.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from ...services import Services
from ..dashboard import dashboard_of
from . import state
from .static import asset_url

if TYPE_CHECKING:  # jinja2 is imported with the first page rendered, not at start-up
    from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Home"),
    ("/outputs", "Outputs"),
    ("/generate", "Generate"),
    ("/models", "Models"),
    ("/workflows", "Workflows"),
    ("/nodes", "Nodes"),
    ("/settings", "Settings"),
    ("/pro", "Pro"),
)


def _filesize(n: float | int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


@lru_cache(maxsize=1)
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["filesize"] = _filesize
    env.globals["asset"] = asset_url
    env.globals["nav"] = NAV
    return env


def services(request: Request) -> Services:
    return dashboard_of(request).services


def is_fragment(request: Request) -> bool:
    """True for an htmx request that wants a fragment (not a boosted full navigation)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-boosted") != "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def base_context(request: Request) -> dict[str, Any]:
    svc = services(request)
    return {
        "request": request,
        "path": request.url.path,
        "password_set": svc.settings.password_set,
        "csrf_token": state.csrf_token(request),
        "comfyui": state.comfyui_state(svc),
        "active_tasks": state.active_task_count(svc),
        "version": state.version(),
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str = "content",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The full page, or only `block` of it when htmx asks for a fragment."""
    ctx = base_context(request)
    if context:
        ctx.update(context)
    tmpl = environment().get_template(template)
    if is_fragment(request):
        target = request.headers.get("hx-target", "")
        target = target.replace("-", "_")
        name = target if target in tmpl.blocks else block
        html = "".join(tmpl.blocks[name](tmpl.new_context(ctx))) if name in tmpl.blocks else tmpl.render(ctx)
    else:
        html = tmpl.render(ctx)
    out = HTMLResponse(html, status_code=status_code, headers=headers)
    out.headers["Vary"] = "HX-Request"
    out.headers["Cache-Control"] = "no-store"
    return out


def render_partial(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """A `_name.html` partial on its own (always a fragment)."""
    ctx = base_context(request)
    if context:
        ctx.update(context)
    html = environment().get_template(template).render(ctx)
    out = HTMLResponse(html, status_code=status_code)
    out.headers["Vary"] = "HX-Request"
    out.headers["Cache-Control"] = "no-store"
    return out
