"""`/ws`: the events WebSocket. Every bus event is pushed to the browser the moment it is published.

Messages are the bus's JSON shape `{"type", "ts", "data"}`:
`task_state`, `download_progress`, `service_state`, `generation` (frames relayed from ComfyUI),
`system_status` (every few seconds, from the one background publisher), `log_line`.
The first message is `{"type": "hello", "data": {"comfyui": {...}, "tasks": [...], ...}}`, a
snapshot so a page needs no extra request. `?types=task_state,download_progress` limits what is
sent. A client may send `{"type": "ping"}` and gets `{"type": "pong"}`. Authentication and the
origin check happen before the socket is accepted (see `auth/`). `log_line` text goes through the
same redaction as `/api/logs` (this runtime's password and tokens masked).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from ..events import Event, LogLine
from ..services import Services
from .api.logs import redact
from .dashboard import Dashboard, dashboard_of
from .deps import comfyui_status
from .pump import until_first_done

router = APIRouter()
QUEUE_SIZE = 2000


def _tasks(svc: Services) -> list[dict[str, Any]]:
    return [t.to_dict() for t in svc.presets.tasks()] if svc.presets is not None else []


def hello(dashboard: Dashboard) -> dict[str, Any]:
    svc = dashboard.services
    return {
        "type": "hello",
        "ts": time.time(),
        "data": {
            "comfyui": comfyui_status(svc).as_dict(),
            "tasks": _tasks(svc),
            "password_set": dashboard.auth.enabled,
        },
    }


def message_of(event: Event, svc: Services, token: str | None) -> dict[str, Any]:
    message = event.to_message()
    if isinstance(event, LogLine):
        message["data"] = {**message["data"], "line": redact(event.line, svc, token)}
    return message


@router.websocket("/ws")
async def events(websocket: WebSocket) -> None:
    dashboard = dashboard_of(websocket)
    svc = dashboard.services
    raw_types = websocket.query_params.get("types")
    types = [t.strip() for t in raw_types.split(",") if t.strip()] if raw_types else None
    sub = svc.bus.subscribe(types, maxsize=QUEUE_SIZE)
    try:
        await websocket.accept()
        await websocket.send_text(json.dumps(hello(dashboard), default=str))

        token = dashboard.auth.api_token()

        async def sender() -> None:
            while True:
                event = await sub.get()
                await websocket.send_text(json.dumps(message_of(event, svc, token), default=str))

        async def receiver() -> None:
            while True:
                msg = await websocket.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                text = msg.get("text")
                if text and '"ping"' in text:
                    with contextlib.suppress(ValueError):
                        if json.loads(text).get("type") == "ping":
                            await websocket.send_text('{"type": "pong"}')

        await until_first_done(sender(), receiver())
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()
