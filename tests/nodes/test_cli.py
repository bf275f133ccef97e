"""`comfyui-docker nodes ...`: exit codes, output, and the same refusals as the service."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from comfyui_docker.cli import main
from comfyui_docker.settings import Settings

from .kit import BareRepo, node_folder


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings], offline: dict[str, str]
) -> Settings:
    settings = make_settings()
    monkeypatch.setenv("WORKSPACE_ROOT", str(settings.workspace_root))
    monkeypatch.setenv("COMFYUI_ROOT", str(settings.comfyui_root))
    monkeypatch.setenv("COMFYUI_PYTHON", str(settings.comfyui_python))
    return settings


def test_install_list_check_update_remove(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = BareRepo(tmp_path, "ComfyUI-Cli")
    init = (node_folder(tmp_path / "tpl", "cli_node") / "__init__.py").read_text()
    first = repo.commit({"__init__.py": init, "requirements.txt": "nodepkg==1.0\n"})
    assert main(["nodes", "install", f"{repo.url}@{first}"]) == 0
    out = capsys.readouterr()
    assert "installed ComfyUI-Cli" in out.out and "installing ComfyUI-Cli's requirements" in out.err
    assert main(["nodes", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    node = next(n for n in listed["volume"] if n["name"] == "ComfyUI-Cli")
    assert node["commit"] == first and node["packages"]["state"] == "ok"
    assert main(["nodes", "list"]) == 0
    assert "ComfyUI-Cli" in capsys.readouterr().out
    assert main(["nodes", "check", "--json"]) == 0  # no import seen yet, nothing missing
    checked = json.loads(capsys.readouterr().out)
    assert checked["problems"] == 0
    second = repo.commit({"requirements.txt": "nodepkg==2.0\n"})
    assert main(["nodes", "update", "ComfyUI-Cli", "--ref", "main", "-q", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["commit"] == second
    assert main(["nodes", "remove", "ComfyUI-Cli"]) == 0
    assert "removed ComfyUI-Cli" in capsys.readouterr().out
    assert not (cli_env.workspace_root / "custom_nodes" / "ComfyUI-Cli").exists()


def test_exit_codes_of_refusals(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conflicting = node_folder(tmp_path, "old", requirements="wantstorch\n")
    assert main(["nodes", "install", str(conflicting)]) == 3
    err = capsys.readouterr().err
    assert "conflict" in err and "torch==2.0.0" in err
    assert main(["nodes", "install", str(node_folder(tmp_path, "n")), "--name", "../x"]) == 2
    assert "not a valid node name" in capsys.readouterr().err
    assert main(["nodes", "remove", "nothing"]) == 2
    assert main(["nodes", "install", str(tmp_path / "missing")]) == 2
    assert main(["nodes", "install", "http://127.0.0.1:9/x.git"]) == 1
    assert "git clone failed" in capsys.readouterr().err
    ws = cli_env.workspace_root
    assert not [p for p in (ws / "custom_nodes").iterdir()]


def test_check_reports_a_failed_import_and_missing_requirements(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = cli_env.workspace_root
    (ws / "custom_nodes").mkdir(parents=True, exist_ok=True)
    broken = node_folder(ws / "custom_nodes", "broken", requirements="otherpkg\n")
    (ws / "logs").mkdir(parents=True, exist_ok=True)
    (ws / "logs" / "comfyui.log").write_text(
        f"[WARNING] Cannot import {broken} module for custom nodes: No module named 'otherpkg'\n"
        "Import times for custom nodes:\n"
        f"   0.0 seconds (IMPORT FAILED): {broken}\n"
    )
    assert main(["nodes", "check"]) == 1
    out = capsys.readouterr()
    assert "[FAIL] volume broken: import failed (No module named 'otherpkg')" in out.out
    assert "missing requirement: otherpkg (not installed)" in out.out
    assert "1 node(s) with problems" in out.err
