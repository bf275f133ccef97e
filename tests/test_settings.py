from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from comfyui_docker.errors import SettingsError
from comfyui_docker.settings import IMAGE_WORKSPACE, SPECS, Secret, Settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_on_a_source_checkout(tmp_path: Path) -> None:
    s = Settings.from_env({}, cwd=tmp_path)
    if not IMAGE_WORKSPACE.is_dir():
        assert s.workspace_root == tmp_path / "workspace"
        assert not IMAGE_WORKSPACE.exists(), "must never create /workspace on a laptop"
    assert s.dashboard_port == 8080
    assert s.comfyui_port == 3000
    assert s.enable_preset_manager is True
    assert s.time_zone == "Etc/UTC"
    assert not s.password_set


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"DASHBOARD_PORT": "abc"}, "DASHBOARD_PORT"),
        ({"COMFYUI_PORT": "70000"}, "COMFYUI_PORT"),
        ({"WORKSPACE_ROOT": "relative/ws"}, "WORKSPACE_ROOT"),
        ({"COMFYUI_ROOT": "ComfyUI"}, "COMFYUI_ROOT"),
        ({"ENABLE_PRESET_MANAGER": "maybe"}, "ENABLE_PRESET_MANAGER"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
        ({"PRESET_DOWNLOAD": "WAN 22"}, "PRESET_DOWNLOAD"),
        ({"COMFYUI_EXTRA_ARGS": "--foo 'bar"}, "COMFYUI_EXTRA_ARGS"),
        ({"DOWNLOAD_CONNECTIONS": "0"}, "DOWNLOAD_CONNECTIONS"),
        ({"DASHBOARD_PORT": "3000"}, "COMFYUI_PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, env: dict[str, str], var: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env, cwd=tmp_path)
    assert err.value.variable == var
    assert var in str(err.value)
    assert err.value.hint


def test_values_are_parsed(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "WORKSPACE_ROOT": str(tmp_path / "ws"),
            "DASHBOARD_PORT": "9000",
            "PRESET_DOWNLOAD": "wan_22_5b_tiv2, LTX_VIDEO_T2V,,",
            "IMAGE_PRESET_DOWNLOAD": "SDXL_BASE",
            "AUDIO_PRESET_DOWNLOAD": "LTX_VIDEO_T2V",
            "ENABLE_PRESET_MANAGER": "false",
            "COMFYUI_EXTRA_ARGS": "--cpu --preview-method 'auto'",
            "TIME_ZONE": "Europe/Berlin",
        },
        cwd=tmp_path,
    )
    assert s.workspace_root == tmp_path / "ws"
    assert s.dashboard_port == 9000
    assert s.preset_download == ("WAN_22_5B_TIV2", "LTX_VIDEO_T2V")
    assert s.startup_presets == ("WAN_22_5B_TIV2", "LTX_VIDEO_T2V", "SDXL_BASE")
    assert s.enable_preset_manager is False
    assert s.comfyui_extra_args == ("--cpu", "--preview-method", "auto")


def test_token_aliases_and_hosts(tmp_path: Path) -> None:
    s = Settings.from_env({"HUGGING_FACE_HUB_TOKEN": "hf_abc", "CIVITAI_API_TOKEN": "civ"}, cwd=tmp_path)
    assert s.hf_token.get() == "hf_abc"
    assert s.civitai_token.get() == "civ"
    assert s.token_for_host("huggingface.co") == s.hf_token
    assert s.token_for_host("cdn-lfs.huggingface.co") == s.hf_token
    assert s.token_for_host("civitai.com") == s.civitai_token
    assert s.token_for_host("cas-bridge.xethub.hf.co") is None
    assert s.token_for_host("evilhuggingface.co") is None
    primary = Settings.from_env({"HF_TOKEN": "one", "HUGGING_FACE_HUB_TOKEN": "two"}, cwd=tmp_path)
    assert primary.hf_token.get() == "one"


def test_secrets_never_in_repr_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings.from_env(
        {
            "ACCESS_PASSWORD": "hunter2-pass",
            "HF_TOKEN": "hf_secret_xyz",
            "CIVITAI_TOKEN": "civ_secret",
            "API_TOKEN": "api_secret",
        },
        cwd=tmp_path,
    )
    text = repr(s) + str(s) + repr(s.public_items())
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %s", s, s.public_items())
    text += caplog.text
    for secret in ("hunter2-pass", "hf_secret_xyz", "civ_secret", "api_secret"):
        assert secret not in text
    assert s.public_items()["ACCESS_PASSWORD"] == "set"
    assert repr(Secret("x")) == "Secret('**********')"


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)`", readme, flags=re.M))
    missing = {s.env for s in SPECS} - documented
    assert not missing, f"settings missing from the README table: {sorted(missing)}"
    for spec in SPECS:
        for alias in spec.aliases:
            assert f"`{alias}`" in readme, f"alias {alias} not documented"


def test_design_document_variables_are_all_settings() -> None:
    names = {s.env for s in SPECS}
    for var in (
        "WORKSPACE_ROOT",
        "COMFYUI_ROOT",
        "DASHBOARD_PORT",
        "COMFYUI_PORT",
        "PRESET_DOWNLOAD",
        "IMAGE_PRESET_DOWNLOAD",
        "AUDIO_PRESET_DOWNLOAD",
        "ENABLE_PRESET_MANAGER",
        "ACCESS_PASSWORD",
        "TIME_ZONE",
        "HF_TOKEN",
        "CIVITAI_TOKEN",
        "COMFYUI_EXTRA_ARGS",
    ):
        assert var in names


def test_comfyui_python_defaults_to_the_venv_beside_root(tmp_path: Path) -> None:
    root = tmp_path / "comfyui" / "ComfyUI"
    root.mkdir(parents=True)
    (root / "main.py").write_text("")
    py = tmp_path / "comfyui" / "venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    s = Settings.from_env({"COMFYUI_ROOT": str(root)}, cwd=tmp_path)
    assert s.comfyui_installed
    assert s.comfyui_python == py


def test_comfyui_pass_env_names_variables_but_never_our_secrets(tmp_path: Path) -> None:
    base = {"WORKSPACE_ROOT": str(tmp_path)}
    s = Settings.from_env({**base, "COMFYUI_PASS_ENV": "OPENAI_API_KEY, HF_TOKEN"})
    assert s.comfyui_pass_env == ("OPENAI_API_KEY", "HF_TOKEN")
    for bad in ("ACCESS_PASSWORD", "API_TOKEN", "NOT-A-NAME"):
        with pytest.raises(SettingsError, match="COMFYUI_PASS_ENV"):
            Settings.from_env({**base, "COMFYUI_PASS_ENV": bad})
