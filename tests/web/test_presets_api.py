"""Presets API: the design document's paths and shapes (§5.2) plus tasks, cancel, installed state."""

from __future__ import annotations

from pathlib import Path

from comfyui_docker.events import TaskState

from .conftest import build, client_for


async def test_list_shape_and_filters(client, app_svc) -> None:
    r = await client.get("/api/presets")
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"presets", "total", "problems"}
    assert body["total"] == 3 and set(body["presets"]) == {"SD15_BASE", "FLUX_SCHNELL", "WAN_22_5B_TIV2"}
    assert body["presets"]["SD15_BASE"]["name"] == "Stable Diffusion 1.5"
    assert "did you mean 'loras'" in body["problems"][0]
    r = await client.get("/api/presets", params={"type": "video"})
    assert list(r.json()["presets"]) == ["WAN_22_5B_TIV2"] and r.json()["total"] == 1
    r = await client.get("/api/presets", params={"category": "flux", "type": "image"})
    assert list(r.json()["presets"]) == ["FLUX_SCHNELL"]
    assert app_svc[1].presets.calls[-1] == ("list", ("flux", "image"))


async def test_install_status_cancel_tasks(client, app_svc) -> None:
    sub = app_svc[1].bus.subscribe(["task_state"])
    r = await client.post("/api/presets/install", json={"preset_id": "SD15_BASE", "variant": "fp16"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"task_id", "status", "message"}
    assert body["status"] == "queued" and "SD15_BASE" in body["message"]
    event = sub.queue.get_nowait()
    assert isinstance(event, TaskState) and event.task_id == body["task_id"]
    st = (await client.get(f"/api/presets/status/{body['task_id']}")).json()
    assert st["id"] == body["task_id"] and st["state"] == "queued" and st["preset_id"] == "SD15_BASE"
    tasks = (await client.get("/api/presets/tasks")).json()["tasks"]
    assert [t["id"] for t in tasks] == [body["task_id"]]
    r = await client.post(f"/api/presets/tasks/{body['task_id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = await client.post(f"/api/presets/tasks/{body['task_id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_unknown_ids_are_404(client) -> None:
    r = await client.get("/api/presets/status/no-such-task")
    assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
    r = await client.delete("/api/presets/NO_SUCH_PRESET")
    assert r.status_code == 404 and r.json()["error"]["code"] == "preset_not_found"
    r = await client.post("/api/presets/install", json={"preset_id": "NO_SUCH_PRESET"})
    assert r.status_code == 404
    r = await client.get("/api/presets/NO_SUCH_PRESET")
    assert r.status_code == 404
    r = await client.post("/api/presets/tasks/nope/cancel")
    assert r.status_code == 404


async def test_bad_variant_is_400(client) -> None:
    r = await client.post("/api/presets/install", json={"preset_id": "SD15_BASE", "variant": "gguf_q9"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


async def test_preset_path_traversal_refused(client) -> None:
    for raw in ("..%2F..%2Fetc", "%2e%2e", "SD15_BASE%00", "sd15_base", "%2Fetc%2Fpasswd"):
        r = await client.get(f"/api/presets/{raw}")
        assert r.status_code in (404, 422), raw
        r = await client.delete(f"/api/presets/{raw}")
        assert r.status_code in (404, 422), raw
    r = await client.post("/api/presets/install", json={"preset_id": "../../etc/passwd"})
    assert r.status_code == 422
    r = await client.get("/api/presets/status/..%2F..%2Fetc%2Fpasswd")
    assert r.status_code in (404, 422)


async def test_uninstall_and_installed_state(client, app_svc) -> None:
    presets = app_svc[1].presets
    presets.installed.add("FLUX_SCHNELL")
    got = (await client.get("/api/presets/FLUX_SCHNELL")).json()
    assert got["installed"] == "installed" and got["name"] == "FLUX.1 schnell"
    r = await client.delete("/api/presets/FLUX_SCHNELL")
    assert r.status_code == 200
    assert r.json() == {
        "status": "deleted",
        "preset_id": "FLUX_SCHNELL",
        "removed": ["diffusion_models/flux1-schnell.safetensors", "vae/ae.safetensors"],
    }
    presets.installed.discard("FLUX_SCHNELL")
    assert (await client.get("/api/presets/FLUX_SCHNELL")).json()["installed"] == "not_installed"


async def test_service_missing_or_disabled(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "a", presets=False)
    async with client_for(app) as c:
        r = await c.get("/api/presets")
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    app, _ = build(tmp_path / "b", ENABLE_PRESET_MANAGER="false")
    async with client_for(app) as c:
        r = await c.post("/api/presets/install", json={"preset_id": "SD15_BASE"})
        assert r.status_code == 403 and "ENABLE_PRESET_MANAGER" in r.json()["error"]["hint"]


async def test_list_cache_is_dropped_on_task_events_and_own_changes(client, app_svc) -> None:
    import asyncio

    presets = app_svc[1].presets
    first = (await client.get("/api/presets")).json()
    assert "NEW_ONE" not in first["presets"]
    from .fakes import PRESETS

    PRESETS["NEW_ONE"] = {**PRESETS["SD15_BASE"], "id": "NEW_ONE", "name": "added"}
    try:
        # still the cached list (the catalog changed behind the service's back)
        assert "NEW_ONE" not in (await client.get("/api/presets")).json()["presets"]
        # a task changing state drops it at once (the listener is woken by the bus)
        await client.post("/api/presets/install", json={"preset_id": "SD15_BASE"})
        assert "NEW_ONE" in (await client.get("/api/presets")).json()["presets"]
        del PRESETS["NEW_ONE"]
        app_svc[1].bus.publish(TaskState(task_id="x", preset_id="SD15_BASE", state="done"))
        await asyncio.sleep(0.05)
        assert "NEW_ONE" not in (await client.get("/api/presets")).json()["presets"]
    finally:
        PRESETS.pop("NEW_ONE", None)
    assert presets.calls.count(("list", (None, None))) == 3
