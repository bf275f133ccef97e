"""Home shows services, RunPod links, tasks and timings honestly; Pro masks secrets."""

from __future__ import annotations

from pathlib import Path

import httpx

from comfyui_docker.services import PhaseTiming, Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from web.fakes import FakePresets, FakeTask


def _app(env: dict[str, str], tmp_path: Path) -> tuple[httpx.AsyncClient, Services, object]:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"), **env})
    svc = Services.create(settings)
    svc.workspace.ensure()
    app = create_app(settings, svc)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")
    return client, svc, app


def fake_tasks(svc: Services) -> FakePresets:
    """A preset service with one active and one finished task (what the pages read)."""
    presets = FakePresets(svc.bus)
    presets.add_task(FakeTask("t1", "SDXL_BASE", "downloading", bytes_done=5, bytes_total=10))
    presets.add_task(FakeTask("t2", "OLD", "done", bytes_done=1, bytes_total=1))
    return presets


async def test_home_services_timings_tasks(tmp_path: Path) -> None:
    client, svc, app = _app({"RUNPOD_POD_ID": "abc123"}, tmp_path)
    svc.timings.extend(
        [PhaseTiming("volume", 0.012), PhaseTiming("comfyui", 12.5, ok=False, detail="exit 1")]
    )
    svc.presets = fake_tasks(svc)
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        r = await client.get("/")
    html = r.text
    assert "https://abc123-8080.proxy.runpod.net/" in html and "https://abc123-3000.proxy.runpod.net/" in html
    assert "0.01 s" in html and "12.50 s" in html and "failed" in html and "12.51 s" in html
    assert "SDXL_BASE" in html and '"OLD"' not in html  # only active tasks are listed
    assert 'data-active="1"' in html
    assert "ComfyUI" in html and "not supervised" in html


async def test_home_without_comfyui_installed(tmp_path: Path) -> None:
    root = tmp_path / "no-comfy"
    root.mkdir()
    client, _svc, app = _app({"COMFYUI_ROOT": str(root)}, tmp_path)
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        html = (await client.get("/")).text
    assert "not installed" in html
    assert "No start-up phases recorded" in html and "No outputs yet" in html


async def test_pro_masks_secrets_and_lists_versions(tmp_path: Path) -> None:
    client, _svc, app = _app({"HF_TOKEN": "hf_supersecretvalue", "ACCESS_PASSWORD": "pw-123456"}, tmp_path)
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        login = await client.post("/login", data={"password": "pw-123456", "next": "/pro"})
        assert login.status_code in (200, 303)
        html = (await client.get("/pro")).text
    assert "hf_supersecretvalue" not in html and "pw-123456" not in html
    assert ">HF_TOKEN<" in html and ">set<" in html
    assert "comfyui-docker" in html and "/docs" in html
