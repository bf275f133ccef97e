"""`comfyui-docker doctor`: the troubleshooting checklist as one command.

Each check yields a Finding (ok / warn / fail) with what to do. Nothing here changes the volume.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServiceUnavailable
from .model_paths import render_yaml
from .settings import Settings
from .user_yaml import check_user_yaml
from .workspace import LOW_SPACE_BYTES, Workspace


@dataclass(frozen=True)
class Finding:
    level: str  # "ok" | "warn" | "fail"
    topic: str
    message: str
    fix: str = ""


def probe_comfyui(url: str) -> dict[str, Any] | None:
    """ComfyUI's `/system_stats` (through its client, with the probe timeout); None when it does
    not answer as ComfyUI."""

    async def ask() -> dict[str, Any] | None:
        import aiohttp

        from .comfyui import ComfyUIClient, ComfyUIError

        async with aiohttp.ClientSession() as session:
            try:
                return await ComfyUIClient(session, url).system_stats(probe=True)
            except (ServiceUnavailable, ComfyUIError):
                return None

    return asyncio.run(ask())


def run_checks(settings: Settings, *, probe: bool = True) -> list[Finding]:
    ws = Workspace(settings.workspace_root)
    out: list[Finding] = []
    if not ws.root.is_dir():
        return [
            Finding(
                "fail",
                "volume",
                f"{ws.root} does not exist",
                "mount the volume or run `comfyui-docker init`",
            )
        ]
    missing = [p for p in ws.required_dirs() if not p.is_dir()]
    if missing:
        shown = ", ".join(str(p.relative_to(ws.root)) for p in missing[:5])
        out.append(
            Finding(
                "fail",
                "layout",
                f"{len(missing)} folder(s) missing: {shown}",
                "run `comfyui-docker init`",
            )
        )
    else:
        out.append(Finding("ok", "layout", f"all {len(ws.required_dirs())} folders present under {ws.root}"))
    try:
        ws.check_writable()
        out.append(Finding("ok", "writable", f"{ws.root} is writable"))
    except Exception as exc:  # WorkspaceError carries the fix
        out.append(Finding("fail", "writable", str(exc), "mount the volume read-write"))
    gen = ws.generated_yaml
    if not gen.is_file():
        out.append(Finding("fail", "model paths", f"{gen} is missing", "run `comfyui-docker init`"))
    elif gen.read_text(encoding="utf-8") != render_yaml(ws.models, ws.custom_nodes):
        out.append(
            Finding(
                "warn",
                "model paths",
                f"{gen} differs from what this version writes",
                "run `comfyui-docker init` (it is rewritten at every start)",
            )
        )
    else:
        out.append(Finding("ok", "model paths", f"{gen} is current"))
    usable, problems = check_user_yaml(ws.user_yaml)
    if ws.user_yaml.is_file():
        for prob in problems:
            out.append(
                Finding(
                    "fail" if prob.fatal else "warn",
                    "user model paths",
                    f"{ws.user_yaml.name}{prob}",
                    "fix the file; it is skipped while broken" if prob.fatal else "",
                )
            )
        if usable and not problems:
            out.append(Finding("ok", "user model paths", f"{ws.user_yaml} is valid"))
    counts = ws.folder_counts() if ws.models.is_dir() else {}
    total = sum(counts.values())
    listed = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "none yet"
    out.append(
        Finding(
            "ok" if total else "warn",
            "models",
            f"{total} model file(s): {listed}",
            "" if total else "install a preset: `comfyui-docker presets list`",
        )
    )
    out.append(Finding("ok", "logs", f"{ws.logs / 'dashboard.log'} and {ws.logs / 'comfyui.log'}"))
    disk = ws.disk_usage()
    gib = disk.free / 1024**3
    if disk.free < LOW_SPACE_BYTES:
        out.append(Finding("warn", "disk", f"only {gib:.1f} GiB free", "free space or grow the volume"))
    else:
        out.append(Finding("ok", "disk", f"{gib:.1f} GiB free of {disk.total / 1024**3:.1f} GiB"))
    if not settings.comfyui_installed:
        out.append(
            Finding(
                "warn",
                "comfyui",
                "ComfyUI is not installed here",
                "set COMFYUI_ROOT to a folder holding ComfyUI's main.py",
            )
        )
    elif probe:
        stats = probe_comfyui(settings.comfyui_url)
        if stats is None:
            out.append(
                Finding(
                    "fail",
                    "comfyui",
                    f"no answer at {settings.comfyui_url}",
                    f"is `comfyui-docker start` running? see {ws.logs / 'comfyui.log'}",
                )
            )
        else:
            version = stats.get("system", {}).get("comfyui_version", "?")
            out.append(
                Finding(
                    "ok",
                    "comfyui",
                    f"ComfyUI {version} answers at {settings.comfyui_url}",
                )
            )
    return out


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.level == "fail" for f in findings) else 0


def log_paths(root: Path) -> list[Path]:
    return [root / "logs" / "dashboard.log", root / "logs" / "comfyui.log"]
