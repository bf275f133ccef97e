"""One list of workflows: saved through ComfyUI's own `/api/userdata/workflows%2F...` (what its
editor does) it is on the dashboard and runs headless; saved on the dashboard it is in ComfyUI's
workflow browser (`/api/userdata?dir=workflows`). Against the fake and, opt-in, a real ComfyUI,
started with the runtime's own `--user-directory`."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from comfyui_docker.children.comfyui import user_directory
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from comfyui_docker.workspace import Workspace
from fakes.comfyui_root.launch import FAKE_ROOT, Comfy, http, real_comfyui_root, run_comfyui

UI = {
    "last_node_id": 2,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            "widgets_values": [64, 48, 1, 0],
        },
        {
            "id": 2,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "widgets_values": ["roundtrip"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "version": 0.4,
}


@pytest.fixture(
    scope="module",
    params=[pytest.param("fake", id="fake"), pytest.param("real", id="real", marks=pytest.mark.real_comfyui)],
)
def comfy_ws(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Comfy, Workspace]]:
    if request.param == "real":
        root, why = real_comfyui_root()
        if root is None:
            pytest.skip(f"real ComfyUI: {why}")
        timeout = 120.0
    else:
        root, timeout = FAKE_ROOT, 30.0
    base = tmp_path_factory.mktemp(f"roundtrip-{request.param}")
    ws = Workspace(base / "ws")
    ws.init()
    args = [
        "--cpu",
        "--user-directory",
        str(user_directory(ws)),
        "--database-url",
        f"sqlite:///{base}/db.sqlite",
    ]
    with run_comfyui(base / "comfy", root=root, extra_args=args, timeout=timeout) as running:
        yield running, ws


def _client(comfy: Comfy, ws: Workspace) -> tuple[Any, httpx.AsyncClient]:
    settings = Settings.from_env(
        {"WORKSPACE_ROOT": str(ws.root), "COMFYUI_INTERNAL_PORT": str(comfy.port)}, cwd=ws.root.parent
    )
    app = create_app(settings, Services(settings=settings, workspace=ws))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return app, httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def _done(comfy: Comfy, prompt_id: str) -> dict[str, Any]:
    for _ in range(600):
        status, _, body = await asyncio.to_thread(http, "GET", f"{comfy.url}/history/{prompt_id}")
        entry = json.loads(body or b"{}").get(prompt_id) if status == 200 else None
        if entry and entry.get("status", {}).get("completed") is not None:
            return dict(entry)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{prompt_id} did not finish")


async def test_saved_in_comfyui_is_on_the_dashboard_and_runs(comfy_ws: tuple[Comfy, Workspace]) -> None:
    comfy, ws = comfy_ws
    name = urllib.parse.quote("workflows/from the editor/cat.json", safe="")
    status, _, body = http("POST", f"{comfy.url}/api/userdata/{name}?overwrite=true", json.dumps(UI).encode())
    assert status == 200 and json.loads(body) == "workflows/from the editor/cat.json"
    app, client = _client(comfy, ws)
    async with app.router.lifespan_context(app), client:
        listed = [w["name"] for w in (await client.get("/api/workflows")).json()["workflows"]]
        assert "from the editor/cat.json" in listed
        assert (await client.get("/api/workflows/from the editor/cat.json")).json() == UI
        r = await client.post("/api/workflows/from the editor/cat.json/run", json={})
        assert r.status_code == 200, r.text
        entry = await _done(comfy, r.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"]["2"]["images"][0]["filename"].startswith("roundtrip_")


async def test_saved_on_the_dashboard_is_in_comfyuis_workflow_browser(
    comfy_ws: tuple[Comfy, Workspace],
) -> None:
    comfy, ws = comfy_ws
    app, client = _client(comfy, ws)
    async with app.router.lifespan_context(app), client:
        r = await client.put("/api/workflows/dashboard/dog.json", json=UI)
        assert r.status_code == 200 and r.json()["name"] == "dashboard/dog.json"
        files = {"file": ("uploaded.json", json.dumps(UI).encode(), "application/json")}
        assert (await client.post("/api/workflows", files=files)).status_code == 201
    status, _, body = http("GET", f"{comfy.url}/api/userdata?dir=workflows&recurse=true")
    assert status == 200
    assert {"dashboard/dog.json", "uploaded.json"} <= set(json.loads(body))
    name = urllib.parse.quote("workflows/dashboard/dog.json", safe="")
    status, _, body = http("GET", f"{comfy.url}/api/userdata/{name}")
    assert status == 200 and json.loads(body) == UI


def test_userdata_paths_outside_the_user_folder_are_refused(comfy_ws: tuple[Comfy, Workspace]) -> None:
    comfy, ws = comfy_ws
    name = urllib.parse.quote("workflows/../../escape.json", safe="")
    assert http("POST", f"{comfy.url}/api/userdata/{name}", b"{}")[0] == 403
    assert not (ws.root / "user" / "escape.json").exists() and not (ws.root / "escape.json").exists()
    assert http("GET", f"{comfy.url}/api/userdata?dir=nothing-here")[0] == 404
    assert http("GET", f"{comfy.url}/api/userdata")[0] == 400
    name = urllib.parse.quote("workflows/dup.json", safe="")
    assert http("POST", f"{comfy.url}/api/userdata/{name}", b"{}")[0] == 200
    assert http("POST", f"{comfy.url}/api/userdata/{name}?overwrite=false", b"{}")[0] == 409
    assert json.loads(http("GET", f"{comfy.url}/api/userdata?dir=workflows&full_info=true")[2])[0].keys() == {
        "path",
        "size",
        "modified",
        "created",
    }
    assert http("DELETE", f"{comfy.url}/api/userdata/{name}")[0] == 204
