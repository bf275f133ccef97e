"""Logs API: the tail of each log in `workspace/logs` (new lines then arrive over `/ws` as
`log_line` events).

    GET /api/logs                    {sources: [{name, size, mtime}]}
    GET /api/logs/{source}?lines=200&search=text    {source, lines: [...]}

Only reads from the end of the file (never the whole of a large log). Secrets of this runtime
(password, tokens) are masked if a line ever contains them.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from ...errors import NotFound
from ...services import Services
from ..deps import DashboardDep, ServicesDep
from ..errors import COMMON_ERRORS, error_responses

router = APIRouter(prefix="/api/logs", tags=["logs"], responses=error_responses(*COMMON_ERRORS))
SOURCE_RE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BLOCK = 64 * 1024


def tail_lines(path: Path, n: int, search: str | None = None, max_bytes: int = 8 * 1024 * 1024) -> list[str]:
    """The last `n` lines of `path` (matching `search` when given), read backwards in blocks."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        buf = b""
        found: list[str] = []
        needle = search.lower() if search else None
        while pos > 0 and end - pos < max_bytes:
            step = min(BLOCK, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            parts = buf.split(b"\n")
            buf = parts[0] if pos > 0 else b""
            complete = parts[1:] if pos > 0 else parts
            for raw in reversed(complete):
                line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\r")
                if not line:
                    continue
                if needle is None or needle in line.lower():
                    found.append(line)
                    if len(found) >= n:
                        return list(reversed(found))
        return list(reversed(found))


def redact(text: str, svc: Services, token: str | None = None) -> str:
    """Mask this runtime's secrets (password, API token, HF and Civitai tokens) in `text`."""
    s = svc.settings
    values = [x.get() for x in (s.access_password, s.api_token, s.hf_token, s.civitai_token)]
    for value in (*values, token or ""):
        if value and len(value) >= 4:
            text = text.replace(value, "********")
    return text


def _sources(svc: Services) -> list[dict[str, Any]]:
    folder = svc.workspace.logs
    out = []
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if entry.suffix == ".log" and entry.is_file() and not entry.name.startswith("."):
                st = entry.stat()
                out.append({"name": entry.stem, "size": st.st_size, "mtime": int(st.st_mtime)})
    return out


@router.get("", summary="The logs there are (comfyui, dashboard, nginx...)")
async def sources(svc: ServicesDep) -> dict[str, Any]:
    return {"sources": await asyncio.to_thread(_sources, svc)}


@router.get("/{source}", summary="The last lines of one log", responses=error_responses(404))
async def tail(
    source: Annotated[str, PathParam(pattern=SOURCE_RE)],
    dashboard: DashboardDep,
    lines: Annotated[int, Query(ge=1, le=5000)] = 200,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    svc = dashboard.services
    path = svc.workspace.logs / f"{source}.log"
    if ".." in source or not path.is_file():
        raise NotFound(f"no log named '{source}'", hint="see GET /api/logs for the names")
    found = await asyncio.to_thread(tail_lines, path, lines, search)
    token = dashboard.auth.api_token()
    return {"source": source, "lines": [redact(line, svc, token) for line in found]}
