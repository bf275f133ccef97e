"""`comfyui-docker presets ...` in-process, against the fake host (user catalog) and the shipped one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyui_docker.cli import main
from fakes.model_host import ModelHost

from .conftest import KIB, blob

DATA = blob(300 * KIB, seed=11)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, ModelHost]]:
    root = tmp_path / "workspace"
    monkeypatch.setenv("WORKSPACE_ROOT", str(root))
    for var in ("PRESET_DOWNLOAD", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with ModelHost() as host:
        (root / "config").mkdir(parents=True)
        (root / "config/presets.yaml").write_text(
            f"""presets:
  LOCAL_ONE:
    name: Local one
    type: image
    tags: [tiny]
    files: [{{path: checkpoints/local.safetensors, url: "{host.add("/local", DATA)}"}}]
  LOCAL_DEAD:
    name: Dead link
    type: image
    files: [{{path: loras/dead.safetensors, url: "{host.url("/missing")}"}}]
"""
        )
        yield root, host


def test_list_search_and_json(env: tuple[Path, ModelHost], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "list", "--type", "video", "--json"]) == 0
    ids = [p["id"] for p in json.loads(capsys.readouterr().out)]
    assert "WAN_22_5B_TIV2" in ids and "LOCAL_ONE" not in ids
    assert main(["presets", "list", "--search", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "LOCAL_ONE" in out and "WAN_22_5B_TIV2" not in out


def test_show(env: tuple[Path, ModelHost], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "show", "wan_22_5b_tiv2"]) == 0
    out = capsys.readouterr().out
    assert "variant gguf_q4" in out and "Wan2.2-TI2V-5B-Q4_K_M.gguf" in out
    assert main(["presets", "show", "WAN_22_5B_TIV"]) == 2
    assert "did you mean WAN_22_5B_TIV2" in capsys.readouterr().err


def test_install_status_remove(env: tuple[Path, ModelHost], capsys: pytest.CaptureFixture[str]) -> None:
    root, _host = env
    assert main(["presets", "install", "LOCAL_ONE"]) == 0
    assert (root / "models/checkpoints/local.safetensors").read_bytes() == DATA
    assert "done LOCAL_ONE" in capsys.readouterr().err
    assert main(["presets", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in status["presets"]] == ["LOCAL_ONE"]
    assert status["tasks"][0]["state"] == "done"
    assert main(["presets", "remove", "LOCAL_ONE"]) == 0
    assert "deleted models/checkpoints/local.safetensors" in capsys.readouterr().out
    assert not (root / "models/checkpoints/local.safetensors").exists()


def test_exit_codes_for_failures(env: tuple[Path, ModelHost], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "install", "LOCAL_DEAD"]) == 1
    err = capsys.readouterr().err
    assert "the URL is dead" in err and "update the preset's url" in err
    assert main(["presets", "install", "LOCAL_ONE", "--variant", "fp8"]) == 2
    assert "no variant 'fp8'" in capsys.readouterr().err
    assert main(["presets", "install", "NOPE_NOPE"]) == 2
    assert main(["presets", "remove", "NOPE_NOPE"]) == 2


def test_not_enough_space_exit_code(env: tuple[Path, ModelHost], capsys: pytest.CaptureFixture[str]) -> None:
    root, host = env
    with (root / "config/presets.yaml").open("a") as fh:
        fh.write(
            f"  HUGE_ONE:\n    name: Huge\n    type: video\n"
            f"    files: [{{path: checkpoints/huge.safetensors, url: '{host.url('/local')}', size: 900TB}}]\n"
        )
    assert main(["presets", "install", "LOCAL_ONE,HUGE_ONE"]) == 3
    assert "not enough free space" in capsys.readouterr().err
    assert not (root / "models/checkpoints/huge.safetensors").exists()
