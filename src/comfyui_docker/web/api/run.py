"""Queueing workflows in ComfyUI: `POST /api/generate`, the one route the Generate page uses too.

    POST /api/generate   {workflow, set?}          any workflow: UI format (converted) or API prompt
                         {template, set?}          one of ComfyUI's official templates, by name
                         {builtin, values}         a built-in template of the Generate page
                         + client_id?              the WebSocket that gets the progress frames
                         -> {prompt_id, number, client_id, relay, nodes, node_errors}

`queue` is shared with `POST /api/workflows/{name}/run`. Prompts go out with the gateway's own
client id when the runtime relays ComfyUI's frames onto the bus (`relay: true`: progress arrives
as `generation` events on `/ws`); otherwise with the caller's `client_id`, whose socket the page
opens through `/api/comfyui/ws` first. ComfyUI's refusals are 400 `prompt_rejected` with
`details.problems` (readable lines) and `details.missing` (model files, with the presets that
provide them); bad form values are 400 `invalid_input` with `details.fields` and `problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...errors import InvalidInput
from ...services import Services
from ..deps import ServicesDep, WorkflowsDep, gateway
from ..errors import COMMON_ERRORS, error_responses

if TYPE_CHECKING:
    from ...workflows.service import Workflow, WorkflowService

router = APIRouter(tags=["comfyui"])
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RunRequest(BaseModel):
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Inputs to set before queueing: {'<node id or title>.<input>': value}",
        examples=[{"KSampler.seed": 42}],
    )
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="The ComfyUI WebSocket id to report progress to, when the dashboard does not relay it",
    )


class GenerateRequest(RunRequest):
    workflow: dict[str, Any] | None = Field(default=None, description="A workflow: UI format or API prompt")
    template: str | None = Field(default=None, max_length=200, description="An official template, by name")
    builtin: str | None = Field(
        default=None,
        max_length=40,
        description="A built-in template of the Generate page (demo, sd15, sdxl, ...)",
    )
    values: dict[str, Any] = Field(default_factory=dict, description="The built-in template's form values")


async def queue(
    svc: Services,
    workflows: WorkflowService,
    workflow: Workflow,
    values: Mapping[str, object],
    client_id: str | None = None,
) -> dict[str, Any]:
    """Prepare `workflow` with `values` set and queue it; the answer of both run routes."""
    if client_id is not None and not CLIENT_ID_RE.match(client_id):
        raise InvalidInput("client_id is malformed", hint="letters, digits, - and _ only; reload the page")
    comfyui = gateway(svc)
    prepared = await workflows.prepare(workflow, values=values)
    cid = comfyui.client_id if comfyui.relayed else (client_id or comfyui.client_id)
    submitted = await workflows.submit(prepared, client_id=cid)
    return {
        **submitted.to_dict(),
        "relay": comfyui.relayed,
        "nodes": {nid: node.get("class_type") for nid, node in prepared.prompt.items()},
    }


def _chosen(body: GenerateRequest, workflows: WorkflowService) -> Workflow:
    named = {"workflow": body.workflow, "template": body.template, "builtin": body.builtin}
    given = [name for name, value in named.items() if value is not None]
    if len(given) != 1:
        raise InvalidInput(
            "send exactly one of workflow, template or builtin",
            hint='e.g. {"workflow": {...}} or {"template": "image_z_image_turbo"}',
        )
    if body.workflow is not None:
        return workflows.accept(body.workflow)
    if body.template is not None:
        return workflows.template(body.template)
    from ... import generate as gen
    from ...workflows.service import Workflow

    builtin = str(body.builtin)
    return Workflow(gen.build(builtin, body.values), f"built-in template {builtin}")


@router.post(
    "/api/generate",
    summary="Queue a workflow in ComfyUI: one given in the body, an official template, or a built-in one",
    responses={**error_responses(*COMMON_ERRORS), **error_responses(400, 404, 502, 503)},
)
async def generate(body: GenerateRequest, svc: ServicesDep, workflows: WorkflowsDep) -> dict[str, Any]:
    workflow = _chosen(body, workflows)
    return await queue(svc, workflows, workflow, body.set, body.client_id)
