from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_docker.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    for var in list(os.environ):
        if var in {"COMFYUI_ROOT", "ACCESS_PASSWORD", "HF_TOKEN", "DASHBOARD_PORT", "COMFYUI_PORT"}:
            monkeypatch.delenv(var)
    monkeypatch.setenv("WORKSPACE_ROOT", str(ws))
    return ws


def test_init_then_doctor(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "extra_model_paths.yaml" in out
    (env / "models" / "checkpoints" / "m.safetensors").write_bytes(b"x")
    code = main(["doctor", "--json"])
    findings = json.loads(capsys.readouterr().out)
    by_topic = {f["topic"]: f for f in findings}
    assert by_topic["layout"]["level"] == "ok"
    assert by_topic["model paths"]["level"] == "ok"
    assert "checkpoints=1" in by_topic["models"]["message"]
    assert by_topic["comfyui"]["level"] == "warn"  # not installed here
    assert code == 0


def test_doctor_fails_on_missing_layout_and_broken_user_yaml(env: Path, capsys) -> None:
    main(["init"])
    capsys.readouterr()
    (env / "config" / "extra_model_paths.user.yaml").write_text("")
    (env / "models" / "vae").rmdir()
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "comfyui-docker init" in out and "empty" in out


def test_bad_setting_exit_2(env: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DASHBOARD_PORT", "abc")
    assert main(["init"]) == 2
    assert "DASHBOARD_PORT" in capsys.readouterr().err


def test_paths_and_version(env: Path, capsys) -> None:
    main(["init"])
    capsys.readouterr()
    assert main(["paths"]) == 0
    out = capsys.readouterr().out
    assert "loras" in out and "--output-directory" in out
    assert main(["paths", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["folders"]["loras"].endswith("models/loras")
    assert main(["version"]) == 0
    assert "comfyui-docker" in capsys.readouterr().out


def test_migrate_command(env: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / "old" / "models" / "lora"
    old.mkdir(parents=True)
    (old / "x.safetensors").write_bytes(b"x")
    assert main(["migrate", "--from", str(tmp_path / "old" / "models"), "--dry-run"]) == 0
    assert "would move" in capsys.readouterr().out
    assert main(["migrate", "--from", str(tmp_path / "old" / "models")]) == 0
    assert (env / "models" / "loras" / "x.safetensors").exists()


def test_console_script_runs(env: Path) -> None:
    exe = Path(sys.executable).with_name("comfyui-docker")
    proc = subprocess.run([str(exe), "version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_command_is_in_the_readme() -> None:
    import argparse

    from comfyui_docker.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in subs.choices:
        assert f"`comfyui-docker {name}" in readme, f"command {name} missing from the README"
    helps = {a.dest: a.help for a in subs._choices_actions}
    assert all(helps.get(name) for name in subs.choices), "every command has a help line"
