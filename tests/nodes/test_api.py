"""`/api/nodes`: list, install from a git URL, update, remove, as tasks with live `node_task`
events; every bad input answered at once in the one error shape."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfyui_docker.events import NodeTaskState
from comfyui_docker.nodes.service import NodeService
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app

from .kit import BareRepo, node_folder


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings], offline: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = make_settings()
    services = Services.create(settings)
    services.workspace.init()
    services.nodes = NodeService(settings, services.workspace, pip_timeout=120, git_timeout=30)
    services.nodes.image_dir = tmp_path / "image_nodes"
    node_folder(services.nodes.image_dir, "ImagePack")
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client, services


async def finished(services: Services, task_id: str, sub: Any) -> list[NodeTaskState]:
    seen: list[NodeTaskState] = []
    async with asyncio.timeout(60):
        async for event in sub:
            if isinstance(event, NodeTaskState) and event.task_id == task_id:
                seen.append(event)
                if event.state != "running":
                    return seen
    return seen


async def test_install_update_remove_through_the_api(
    api: tuple[httpx.AsyncClient, Services], tmp_path: Path
) -> None:
    client, services = api
    repo = BareRepo(tmp_path, "ComfyUI-Api")
    init = (node_folder(tmp_path / "tpl", "api_node") / "__init__.py").read_text()
    first = repo.commit({"__init__.py": init, "requirements.txt": "nodepkg==1.0\n"})
    listed = (await client.get("/api/nodes")).json()
    assert [n["name"] for n in listed["image"]] == ["ImagePack"] and listed["volume"] == []
    assert listed["layer"]["key"].endswith("torch2.9.1")

    sub = services.bus.subscribe(["node_task"])
    r = await client.post("/api/nodes/install", json={"source": f"{repo.url}@{first}"})
    assert r.status_code == 202 and r.json()["state"] == "running" and r.json()["name"] == "ComfyUI-Api"
    events = await finished(services, r.json()["id"], sub)
    assert events[-1].state == "done", events[-1]
    assert any("Successfully installed nodepkg-1.0" in e.line for e in events)  # pip's own lines, live
    task = (await client.get(f"/api/nodes/tasks/{r.json()['id']}")).json()
    assert task["state"] == "done" and task["result"]["commit"] == first and task["lines"]
    listed = (await client.get("/api/nodes")).json()
    node = listed["volume"][0]
    assert node["name"] == "ComfyUI-Api" and node["commit"] == first and node["packages"]["state"] == "ok"
    assert listed["tasks"][0]["id"] == r.json()["id"]

    second = repo.commit({"requirements.txt": "nodepkg==2.0\n"})
    r = await client.post("/api/nodes/ComfyUI-Api/update", json={"ref": "main"})
    assert r.status_code == 202
    assert (await finished(services, r.json()["id"], sub))[-1].state == "done"
    assert (await client.get("/api/nodes")).json()["volume"][0]["commit"] == second

    r = await client.delete("/api/nodes/ComfyUI-Api")
    assert r.status_code == 202
    assert (await finished(services, r.json()["id"], sub))[-1].state == "done"
    assert (await client.get("/api/nodes")).json()["volume"] == []
    sub.close()


async def test_a_failed_task_says_why(api: tuple[httpx.AsyncClient, Services], tmp_path: Path) -> None:
    client, services = api
    repo = BareRepo(tmp_path, "Conflicted")
    repo.commit({"__init__.py": "", "requirements.txt": "wantstorch\n"})
    sub = services.bus.subscribe(["node_task"])
    r = await client.post("/api/nodes/install", json={"source": repo.url})
    last = (await finished(services, r.json()["id"], sub))[-1]
    sub.close()
    assert (
        last.state == "failed" and "conflict" in (last.error or "") and "torch==2.0.0" in (last.error or "")
    )
    assert not (services.workspace.custom_nodes / "Conflicted").exists()


async def test_bad_input_is_answered_at_once(api: tuple[httpx.AsyncClient, Services], tmp_path: Path) -> None:
    client, services = api
    node_folder(services.workspace.custom_nodes, "present")
    outside = node_folder(tmp_path, "outside")
    os.symlink(outside, services.workspace.custom_nodes / "escape")
    cases = [
        ("POST", "/api/nodes/install", {"source": str(node_folder(tmp_path, "local"))}, 400, "not a git URL"),
        (
            "POST",
            "/api/nodes/install",
            {"source": "https://github.com/o/r", "name": "../x"},
            400,
            "not a valid",
        ),
        (
            "POST",
            "/api/nodes/install",
            {"source": "https://github.com/o/present"},
            409,
            "already on the volume",
        ),
        ("POST", "/api/nodes/install", {"source": "x" * 3000}, 422, ""),
        ("POST", "/api/nodes/install", {"nope": 1}, 422, ""),
        ("POST", "/api/nodes/absent/update", {}, 404, "no node named"),
        ("POST", "/api/nodes/escape/update", {}, 400, "outside the volume"),
        ("POST", "/api/nodes/present/update", {"ref": "--upload-pack=x"}, 422, ""),
        ("DELETE", "/api/nodes/escape", None, 400, "outside the volume"),
        ("DELETE", "/api/nodes/..", None, 404, ""),
        ("DELETE", "/api/nodes/.hidden", None, 400, "not a valid node name"),
        ("GET", "/api/nodes/tasks/abc123", None, 404, "no node task"),
    ]
    for method, path, body, status, message in cases:
        r = await client.request(method, path, json=body)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert "error" in r.json() and message in r.json()["error"]["message"], r.text
    assert (outside / "__init__.py").is_file() and services.node_tasks.list() == []


async def test_without_a_comfyui_the_api_says_503(tmp_path: Path) -> None:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws")}, cwd=tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            listed = (await client.get("/api/nodes")).json()
            assert listed["layer"] is None and "not installed" in listed["problem"]
            r = await client.post("/api/nodes/install", json={"source": "https://github.com/o/r"})
            assert r.status_code == 503 and r.json()["error"]["details"]["state"] == "not_installed"
