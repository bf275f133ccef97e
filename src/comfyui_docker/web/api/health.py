"""`GET /health` (liveness) and `GET /health/ready` (readiness), both public.

`/health/ready` is `comfyui_docker.health.readiness(services)` (200 when ready, 503 otherwise).
Without a login it gives only the verdict and the state of each part; the detail (log lines,
paths) needs the session or the token, or a direct call from the machine itself (Docker's
HEALTHCHECK, `comfyui-docker health`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...health import readiness
from ..auth import header_dict, request_auth
from ..deps import ServicesDep
from ..errors import error_responses

router = APIRouter(tags=["health"])

_HEALTH_OK = {"status": "ok"}


@router.get("/health", summary="Liveness: the dashboard answers")
async def health() -> dict[str, str]:
    return _HEALTH_OK


def _detail_allowed(request: Request) -> bool:
    found = request_auth(request.scope)
    if found is not None and found.method in ("session", "token", "open"):
        return True
    client = request.scope.get("client") or ("", 0)
    headers = header_dict(request.scope)
    direct = not any(h in headers for h in ("x-forwarded-for", "x-real-ip", "forwarded"))
    return direct and client[0] in ("127.0.0.1", "::1")


def _reduce(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ready": bool(data.get("ready"))}
    for key, value in data.items():
        if isinstance(value, dict) and "state" in value:
            out[key] = {"state": value["state"]}
        elif key in ("status",) and isinstance(value, str):
            out[key] = value
    return out


@router.get(
    "/health/ready",
    summary="Readiness: ComfyUI state, downloads, disk (200 ready, 503 not yet)",
    responses={503: {"description": "Not ready (same body, `ready: false`)"}, **error_responses(500)},
)
async def ready(request: Request, svc: ServicesDep) -> JSONResponse:
    data = readiness(svc)
    body = data if _detail_allowed(request) else _reduce(data)
    return JSONResponse(body, status_code=200 if data.get("ready") else 503)
