"""`comfy_org_api_key` reaches ComfyUI as `extra_data.api_key_comfy_org`, beside the editor's workflow.

ComfyUI hands the key to API nodes only (it is in no answer), so what the gateway sends is read by a
recording server on 127.0.0.1 standing in for ComfyUI's /ws and /prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from comfy_samples import object_info as recorded_object_info
from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway, PromptRejected
from comfyui_docker.serverless.jobs import api_key_extra
from comfyui_docker.settings import Secret
from comfyui_docker.workflows.object_info import ObjectInfoStore
from comfyui_docker.workflows.service import WorkflowService

from .conftest import ui_graph


def test_the_jobs_key_wins_over_the_setting() -> None:
    assert api_key_extra("job-key", Secret("env-key")) == {"api_key_comfy_org": "job-key"}
    assert api_key_extra(None, Secret("env-key")) == {"api_key_comfy_org": "env-key"}
    assert api_key_extra(None, Secret("")) is None


@pytest.fixture
async def recorder(unused_tcp_port: int) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for _ in socket:
            pass
        return socket

    async def prompt(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return web.json_response({"error": error, "node_errors": {}}, status=400)

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_post("/prompt", prompt)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        yield f"http://127.0.0.1:{unused_tcp_port}", bodies
    finally:
        await runner.cleanup()


async def test_the_key_goes_with_the_prompt(
    recorder: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, bodies = recorder
    async with aiohttp.ClientSession() as session:
        use = WorkflowService(
            definitions=ObjectInfoStore(tmp_path),
            models_root=tmp_path,
            gateway=ComfyUIGateway(ComfyUIClient(session, url)),
            fixed_definitions=recorded_object_info(),
        )
        prepared = await use.prepare(use.accept(ui_graph()))
        with pytest.raises(PromptRejected):
            await use.run(prepared, extra_data=api_key_extra("job-key", Secret("")))
    (body,) = bodies
    assert body["extra_data"]["api_key_comfy_org"] == "job-key"
    assert json.dumps(body["extra_data"]["extra_pnginfo"]["workflow"]) == json.dumps(ui_graph())
