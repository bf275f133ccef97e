"""A workflow from the internet names its models' URLs; one click installs them. Those URLs reach
only allowed model hosts and never an internal address (the app's own, real preset service)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from comfyui_docker.web.app import create_app

from .conftest import client_for, make_settings


@pytest.fixture
async def internal() -> AsyncIterator[tuple[str, list[str]]]:
    """Stands in for ComfyUI's internal port: what reaches it is what an attack could read."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"system": {"argv": ["main.py"], "secret": "internal"}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


def workflow(*entries: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": i,
                "type": "Note",
                "properties": {"models": [{"name": name, "directory": folder, "url": url}]},
            }
            for i, (folder, name, url) in enumerate(entries, start=1)
        ]
    }


async def test_the_issues_workflow_reaches_nothing_internal(
    tmp_path: Path, internal: tuple[str, list[str]]
) -> None:
    address, seen = internal
    app = create_app(make_settings(tmp_path / "ws"))
    app.state.dashboard.services.workspace.init()
    attack = [
        ("checkpoints", "stats.safetensors", f"http://{address}/system_stats"),
        ("upscale_models", "x.pt", f"http://{address}/upload/image"),  # a .pt: its loader unpickles
    ]
    wf = workflow(
        *attack, ("loras", "fine.safetensors", "https://huggingface.co/o/m/resolve/main/f.safetensors")
    )
    async with client_for(app) as c:
        missing = (await c.post("/api/models/missing", json={"workflow": wf})).json()["missing"]
        by_name = {m["name"]: m["install"] for m in missing}
        assert by_name["stats.safetensors"]["host"] == "127.0.0.1"
        assert by_name["stats.safetensors"]["allowed"] is False
        assert "not an allowed model host" in by_name["x.pt"]["why"]
        assert by_name["fine.safetensors"]["allowed"] is True
        r = await c.post("/api/models/install-missing", json={"workflow": workflow(*attack)})
        body = r.json()
        assert r.status_code == 200 and body["tasks"] == []
        assert {x["name"] for x in body["refused"]} == {"stats.safetensors", "x.pt"}
    ws = app.state.dashboard.services.workspace
    assert seen == []
    assert not (ws.models / "checkpoints" / "stats.safetensors").exists()
    assert not list(ws.models.rglob("*.part"))


async def test_an_allowed_name_that_resolves_inside_is_still_refused(
    tmp_path: Path, internal: tuple[str, list[str]]
) -> None:
    """Even a host the user allowed is not fetched when its address is internal (DNS rebinding, a
    name pointed at 127.0.0.1): refused where the connection is made."""
    address, seen = internal
    port = address.rsplit(":", 1)[1]
    app = create_app(make_settings(tmp_path / "ws", MODEL_HOSTS="huggingface.co,localhost"))
    app.state.dashboard.services.workspace.init()
    wf = workflow(("checkpoints", "stats.safetensors", f"http://localhost:{port}/system_stats"))
    async with client_for(app) as c:
        body = (await c.post("/api/models/install-missing", json={"workflow": wf})).json()
        assert body["refused"] == [] and len(body["tasks"]) == 1
        task_id = body["tasks"][0]["id"]
        for _ in range(200):
            task = (await c.get(f"/api/presets/status/{task_id}")).json()
            if task["state"] in ("failed", "done"):
                break
            await asyncio.sleep(0.05)
    assert task["state"] == "failed", task
    assert task["error"]["code"] == "url_refused" and "internal address" in task["error"]["message"]
    assert seen == []
