"""Generate: a form on the built-in templates, queued to ComfyUI, live progress, the images.

`POST /generate/queue` builds the API graph (generate.py), posts it to ComfyUI and answers JSON
for the page's script: `{prompt_id, number, client_id, relay, nodes}`, or the one error shape with
readable `details.problems`, `details.fields` and `details.missing` (model files ComfyUI lacks).
When the runtime relays ComfyUI's frames onto the bus (`services.comfyui.client_id`), the prompt
is sent with that client id and progress arrives as `generation` events on `/ws`; otherwise the
page opens ComfyUI's own socket through the proxy with its client id before queueing.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ... import generate as gen
from ...errors import AppError, InvalidInput, ServiceUnavailable
from ...model_paths import list_models
from ...services import Services
from ..deps import comfyui_base_url, require_comfyui
from .rendering import render, services

router = APIRouter()
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def installed_models(svc: Services, folder: str | None) -> list[str]:
    if not folder:
        return []
    table = {folder: [svc.workspace.models / folder]}
    try:
        return list_models(table, folder)
    except OSError:
        return []


def relay_client_id(svc: Services) -> str | None:
    cid = getattr(svc.comfyui, "client_id", None) if svc.comfyui is not None else None
    return str(cid) if cid else None


def _official_tags() -> list[str]:
    from .official import library

    try:
        return library().tags()
    except AppError:
        return []


@router.get("/generate", response_class=HTMLResponse)
async def generate_page(request: Request, template: str = "demo") -> HTMLResponse:
    svc = services(request)
    tmpl = gen.TEMPLATES.get(template) or gen.TEMPLATES["demo"]
    return render(
        request,
        "generate.html",
        {
            "title": "Generate",
            "templates": gen.TEMPLATES,
            "tmpl": tmpl,
            "models": installed_models(svc, tmpl.model_folder),
            "relay": relay_client_id(svc) is not None,
            "official_tags": _official_tags(),
        },
    )


def _error(exc: AppError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)


@router.post("/generate/queue")
async def generate_queue(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        try:
            body = await request.json()
        except ValueError:
            raise InvalidInput("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object")
        template_id = str(body.get("template", ""))
        # Model names are not checked against our folders: ComfyUI may see more (its own
        # models/ folder, the user's extra paths) and is the one to say what is missing.
        graph = gen.build(template_id, body)
        relay_id = relay_client_id(svc)
        client_id = relay_id or str(body.get("client_id", ""))
        if not CLIENT_ID_RE.match(client_id):
            raise InvalidInput("client_id is missing or malformed", hint="reload the page")
        require_comfyui(svc)
        status, answer = await _post_prompt(request, svc, {"prompt": graph, "client_id": client_id})
    except InvalidInput as exc:
        if "fields" in exc.details:
            exc.details["problems"] = [f"{k}: {v}" for k, v in exc.details["fields"].items()]
        return _error(exc)
    except AppError as exc:
        return _error(exc)
    if status == 200 and isinstance(answer, dict) and "prompt_id" in answer:
        return JSONResponse(
            {
                "prompt_id": answer["prompt_id"],
                "number": answer.get("number"),
                "client_id": client_id,
                "relay": relay_id is not None,
                "nodes": {nid: node["class_type"] for nid, node in graph.items()},
            }
        )
    problems = gen.explain(answer)
    missing = gen.missing_models(answer)
    err = InvalidInput(
        problems[0] if problems else "ComfyUI refused the workflow",
        hint="see the list below" if len(problems) > 1 else None,
        problems=problems,
        missing=missing,
        graph=graph if missing else None,
        comfyui_status=status,
    )
    return JSONResponse({"error": err.to_dict()}, status_code=400 if status < 500 else 502)


async def _post_prompt(request: Request, svc: Services, payload: dict[str, Any]) -> tuple[int, Any]:
    shared: aiohttp.ClientSession | None = svc.http or getattr(request.app.state, "proxy_session", None)
    own = shared is None
    session = aiohttp.ClientSession() if shared is None else shared
    try:
        async with session.post(
            comfyui_base_url(svc) + "/prompt",
            data=json.dumps(payload),
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, {"error": {"type": "http", "message": text[:300]}}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(
            f"ComfyUI did not answer ({exc.__class__.__name__})",
            hint="check its state on the Home page and its log on the Pro page",
            state="unreachable",
        ) from None
    finally:
        if own:
            await session.close()
