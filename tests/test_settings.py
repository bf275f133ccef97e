from __future__ import annotations

import dataclasses
import logging
import re
import typing
from pathlib import Path

import pytest

from comfyui_docker import settings_doc
from comfyui_docker.errors import SettingsError
from comfyui_docker.settings import IMAGE_WORKSPACE, SPECS, Computed, Secret, Settings

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


def test_the_readme_table_is_written_from_the_specs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_doc.splice(readme, settings_doc.table()) == readme, (
        "README.md's settings table differs from settings.SPECS: run `make docs`"
    )
    documented = set(re.findall(r"^\| `([A-Z_]+)`", readme, flags=re.M))
    assert {s.env for s in SPECS} <= documented
    for spec in SPECS:
        for alias in spec.aliases:
            assert f"`{alias}`" in readme, f"alias {alias} not documented"


def test_table_rows_show_default_secret_and_alias() -> None:
    by_env = {s.env: s for s in SPECS}
    assert (
        settings_doc.row(by_env["DASHBOARD_PORT"])
        == "| `DASHBOARD_PORT` | `8080` | Public port of the dashboard. |"
    )
    assert settings_doc.row(by_env["ENABLE_PRESET_MANAGER"]).startswith(
        "| `ENABLE_PRESET_MANAGER` | `true` |"
    )
    hf = settings_doc.row(by_env["HF_TOKEN"])
    assert hf.startswith("| `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`) | (empty) |")
    assert hf.endswith("Secret: never logged. |")


def test_docs_command_rewrites_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{settings_doc.START}\n| stale |\n{settings_doc.END}\n\nafter\n")
    assert settings_doc.main(["--check", str(readme)]) == 1
    assert "make docs" in capsys.readouterr().err
    assert settings_doc.main([str(readme)]) == 0
    text = readme.read_text()
    assert "| stale |" not in text and "| `WORKSPACE_ROOT` |" in text and text.endswith("\nafter\n")
    assert settings_doc.main(["--check", str(readme)]) == 0
    readme.write_text("no markers\n")
    assert settings_doc.main([str(readme)]) == 2
    assert "markers are missing" in capsys.readouterr().err


def test_specs_and_settings_fields_agree() -> None:
    hints = typing.get_type_hints(Settings)
    assert [s.attr for s in SPECS] == [f.name for f in dataclasses.fields(Settings)]
    assert len({s.env for s in SPECS}) == len(SPECS)
    for spec in SPECS:
        assert spec.doc_default is not None  # a computed default without `doc` raises here
        if isinstance(spec.default, Computed):
            continue
        field_type = hints[spec.attr]
        assert isinstance(spec.default, typing.get_origin(field_type) or field_type), spec.env
        if spec.doc is None and spec.doc_default:
            # the docs' default, given as the variable's value, parses back to the typed default
            assert spec.parse(spec.env, spec.doc_default) == spec.default, spec.env


def test_an_unset_or_empty_variable_gives_the_default(tmp_path: Path) -> None:
    unset = Settings.from_env({}, cwd=tmp_path)
    empty = Settings.from_env({s.env: "" for s in SPECS}, cwd=tmp_path)
    assert unset == empty
    for spec in SPECS:
        if not isinstance(spec.default, Computed):
            assert getattr(unset, spec.attr) == spec.default, spec.env
    assert unset.public_items()["ENABLE_NGINX"] == "False"
    assert unset.public_items()["COMFYUI_EXTRA_ARGS"] == ""


def test_public_items_quote_extra_args(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"COMFYUI_EXTRA_ARGS": "--a 'b c'", "CORS_ORIGINS": "https://x, https://y"}, cwd=tmp_path
    )
    assert s.public_items()["COMFYUI_EXTRA_ARGS"] == "--a 'b c'"
    assert s.public_items()["CORS_ORIGINS"] == "https://x,https://y"


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
