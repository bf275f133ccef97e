"""The app with the real subsystems it creates itself: PresetService (shipped catalog, journal),
the supervisor's state, and the readiness report."""

from __future__ import annotations

from pathlib import Path

from comfyui_docker.web.app import create_app

from .conftest import client_for, make_settings


async def test_app_creates_and_closes_the_real_preset_service(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws")
    app = create_app(settings)
    svc = app.state.dashboard.services
    svc.workspace.init()
    async with client_for(app) as c:
        assert svc.presets is not None and svc.http is not None
        body = (await c.get("/api/presets")).json()
        assert body["total"] == len(body["presets"]) > 5
        pid, preset = next(iter(body["presets"].items()))
        assert preset["id"] == pid and preset["installed"] == "not_installed"
        one = (await c.get(f"/api/presets/{pid}")).json()
        assert one["id"] == pid and one["files"]
        images = (await c.get("/api/presets", params={"type": "image"})).json()["presets"]
        assert images and all(p["type"] == "image" for p in images.values())
        assert (await c.get("/api/presets/status/nope")).status_code == 404
        assert (await c.delete("/api/presets/NO_SUCH_ONE")).status_code == 404
        r = await c.post("/api/presets/install", json={"preset_id": "NO_SUCH_ONE"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "preset_not_found"
        r = await c.post("/api/presets/install", json={"preset_id": pid, "variant": "no-such-variant"})
        assert r.status_code == 400
        # a workflow naming a file of that preset: the preset is offered as the provider
        f = preset["files"][0]
        folder, name = f["path"].split("/", 1)
        wf = {
            "nodes": [
                {"id": 1, "type": "Note", "properties": {"models": [{"name": name, "directory": folder}]}}
            ]
        }
        missing = (await c.post("/api/models/missing", json={"workflow": wf})).json()["missing"]
        assert pid in missing[0]["providers"]
        assert (await c.get("/api/presets/tasks")).json() == {"tasks": []}
    assert svc.presets is None and svc.http is None  # closed by the lifespan


async def test_state_from_the_real_supervisor(tmp_path: Path) -> None:
    from comfyui_docker.supervisor.manager import Supervisor

    settings = make_settings(tmp_path / "ws")
    app = create_app(settings)
    app.state.dashboard.services.supervisor = Supervisor()
    async with client_for(app) as c:
        st = (await c.get("/api/service/comfyui")).json()
        assert st["state"] == "not_installed" and st["ready"] is False
        r = await c.get("/api/comfyui/system_stats")
        assert r.status_code == 503 and r.json()["error"]["details"]["state"] == "not_installed"
        ready = await c.get("/health/ready")
        assert ready.status_code == 200  # no ComfyUI to wait for counts as ready (health.py)
        assert ready.json()["comfyui"]["state"] == "not_installed" and "disk" in ready.json()


async def test_readiness_detail_needs_login_from_outside(tmp_path: Path) -> None:
    from comfyui_docker.supervisor.manager import Supervisor

    settings = make_settings(tmp_path / "ws", ACCESS_PASSWORD="pw")
    app = create_app(settings)
    app.state.dashboard.services.supervisor = Supervisor()
    async with client_for(app) as c:
        outside = await c.get("/health/ready", headers={"x-forwarded-for": "203.0.113.9"})
        assert outside.status_code == 200
        reduced = outside.json()
        assert reduced["ready"] is True and reduced["comfyui"] == {"state": "not_installed"}
        assert all(set(v) == {"state"} for v in reduced.values() if isinstance(v, dict))
        assert "timings" not in reduced
        local = await c.get("/health/ready")  # Docker's HEALTHCHECK, from the machine itself
        assert "disk" in local.json() and "timings" in local.json()
        assert (await c.get("/health", headers={"x-forwarded-for": "203.0.113.9"})).json() == {"status": "ok"}
