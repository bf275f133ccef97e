"""user_settings.yaml: validation, 0600, masking; the Settings page saves and re-renders errors."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from comfyui_docker import user_settings as us
from comfyui_docker.errors import InvalidInput
from comfyui_docker.settings import Settings


def test_validate_reports_every_problem() -> None:
    _values, errors = us.validate(
        {
            "hf_token": "has space here",
            "startup_presets": "SDXL_BASE, bad-id",
            "download_parallel_files": "40",
        }
    )
    assert set(errors) == {"hf_token", "startup_presets", "download_parallel_files"}
    ok, none = us.validate(
        {
            "hf_token": "hf_abcdefghijkl",
            "startup_presets": "sdxl_base;FLUX_SCHNELL sdxl_base",
            "download_parallel_files": "4",
        }
    )
    assert none == {}
    assert ok.startup_presets == ["SDXL_BASE", "FLUX_SCHNELL"] and ok.download_parallel_files == 4


def test_save_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "config" / "user_settings.yaml"
    values = us.UserSettings(
        hf_token="hf_abcdefghijkl", startup_presets=["SDXL_BASE"], download_parallel_files=2
    )
    us.save(path, values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert us.load(path) == values
    assert not list(path.parent.glob(".*tmp"))


def test_load_missing_and_broken(tmp_path: Path) -> None:
    assert us.load(tmp_path / "none.yaml") == us.UserSettings()
    bad = tmp_path / "bad.yaml"
    bad.write_text("hf_token: [unclosed")
    with pytest.raises(InvalidInput):
        us.load(bad)
    bad.write_text("download_parallel_files: 99\n")
    with pytest.raises(InvalidInput, match="download_parallel_files"):
        us.load(bad)


def test_mask_never_shows_the_token() -> None:
    assert us.mask("hf_abcdefghijklmnop") == "hf_…mnop"
    assert "abcdefgh" not in us.mask("abcdefgh")
    assert us.mask("") == ""


def test_merge_keeps_clears_and_apply(settings: Settings) -> None:
    cur = us.UserSettings(hf_token="hf_keepmekeepme", civitai_token="civ_123456789")
    new, errors = us.merge_form(cur, {"hf_token": "", "clear_civitai_token": "1", "startup_presets": ""})
    assert errors == {} and new.hf_token == "hf_keepmekeepme" and new.civitai_token == ""
    eff = us.apply(
        settings,
        us.UserSettings(hf_token="hf_frompage123", download_parallel_files=5, startup_presets=["SD15_BASE"]),
    )
    assert eff.hf_token.get() == "hf_frompage123" and eff.download_parallel_files == 5
    assert "SD15_BASE" in eff.startup_presets
    assert us.apply(settings, us.UserSettings()) is settings


async def test_settings_page_save_and_errors(client: httpx.AsyncClient, ws_root: Path) -> None:
    path = ws_root / "config" / "user_settings.yaml"
    bad = await client.post(
        "/settings",
        data={"hf_token": "bad token", "download_parallel_files": "0"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    assert "Nothing was saved" in bad.text and bad.text.count("field-error") == 2
    assert "<nav" not in bad.text and not path.exists()
    ok = await client.post(
        "/settings",
        data={
            "hf_token": "hf_secretvalue1234",
            "startup_presets": "sdxl_base",
            "download_parallel_files": "2",
        },
        headers={"HX-Request": "true"},
    )
    assert ok.status_code == 200 and "Saved to" in ok.text
    assert "hf_secretvalue1234" not in ok.text and "hf_…1234" in ok.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    page = await client.get("/settings")
    assert "hf_secretvalue1234" not in page.text and 'value="SDXL_BASE"' in page.text
    path.write_text(": not: valid: yaml: [")
    broken = await client.get("/settings")
    assert broken.status_code == 200 and "not valid YAML" in broken.text


async def test_saved_token_reaches_the_running_downloads(
    client: httpx.AsyncClient, ws_root: Path, settings: Settings
) -> None:
    """A token saved on the page is what the next download sends; a restart also finds it."""
    from comfyui_docker.services import Services

    app_services = client._transport.app.state.dashboard.services  # type: ignore[attr-defined]
    assert app_services.settings.token_for_host("huggingface.co") is None
    ok = await client.post(
        "/settings", data={"hf_token": "hf_fromthepage1234"}, headers={"HX-Request": "true"}
    )
    assert ok.status_code == 200 and "next download" in ok.text
    for effective in (app_services.settings, Services.create(settings).settings):
        token = effective.token_for_host("huggingface.co")
        assert token is not None and token.get() == "hf_fromthepage1234"
    if app_services.presets is not None:
        assert app_services.presets.settings.token_for_host("huggingface.co").get() == "hf_fromthepage1234"


def test_broken_user_settings_do_not_stop_the_start(settings: Settings, ws_root: Path) -> None:
    from comfyui_docker.services import Services

    (ws_root / "config" / "user_settings.yaml").write_text("- not a mapping\n")
    assert Services.create(settings).settings == settings


async def test_settings_lists_sessions_and_logs_out_everywhere(tmp_path: Path) -> None:
    from comfyui_docker.web.app import create_app

    settings = Settings.from_env(
        {"WORKSPACE_ROOT": str(tmp_path / "ws"), "ACCESS_PASSWORD": "pw-for-sessions"}, cwd=tmp_path
    )
    app = create_app(settings)
    app.state.dashboard.services.workspace.init()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as c,
    ):
        for _ in range(2):
            c.cookies.clear()
            r = await c.post("/login", data={"password": "pw-for-sessions", "next": "/settings"})
            assert r.status_code == 303
        page = (await c.get("/settings")).text
        assert '<span id="session-count">2</span> browsers' in page
        assert 'hx-delete="/api/auth/sessions"' in page
        r = await c.delete(
            "/api/auth/sessions", headers={"hx-request": "true", "x-csrf-token": c.cookies["cd_csrf"]}
        )
        assert r.status_code == 200 and r.headers["hx-redirect"] == "/login"
        assert (await c.get("/settings", headers={"accept": "text/html"})).status_code == 303


async def test_model_hosts_are_added_from_settings_and_removed_again(
    client: httpx.AsyncClient, ws_root: Path
) -> None:
    bad = await client.post(
        "/settings", data={"model_hosts": "https://models.example/x"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 422 and "not host names" in bad.text
    ok = await client.post(
        "/settings", data={"model_hosts": "Models.Example.org, 192.168.1.5"}, headers={"HX-Request": "true"}
    )
    assert ok.status_code == 200
    saved = us.load(ws_root / "config" / "user_settings.yaml")
    assert saved.model_hosts == ["models.example.org", "192.168.1.5"]
    wf = {"nodes": [{"id": 1, "type": "Note", "properties": {"models": [
        {"name": "a.safetensors", "directory": "loras", "url": "https://cdn.models.example.org/a.safetensors"},
    ]}}]}  # fmt: skip
    missing = (await client.post("/api/models/missing", json={"workflow": wf})).json()["missing"]
    assert missing[0]["install"]["allowed"] is True
    await client.post("/settings", data={"model_hosts": ""}, headers={"HX-Request": "true"})
    missing = (await client.post("/api/models/missing", json={"workflow": wf})).json()["missing"]
    assert missing[0]["install"]["allowed"] is False  # gone at once, no restart needed
    page = (await client.get("/settings")).text
    assert "huggingface.co, hf.co, civitai.com" in page
