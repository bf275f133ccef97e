from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from comfy_samples import sample
from comfyui_docker.model_lookup import find_model, list_models, resolve_folder_paths
from comfyui_docker.model_paths import (
    CANONICAL_TYPES,
    EXTRA_FOLDERS,
    LEGACY_ALIASES,
    MODEL_FOLDERS,
    render_yaml,
    suggest_folder,
)
from comfyui_docker.user_yaml import validate_yaml_text
from comfyui_docker.workspace import Workspace


def sample_name(folder: str) -> str:
    exts = CANONICAL_TYPES[folder][1]
    if exts == frozenset({"folder"}):
        return "model_dir"
    if exts == frozenset({""}):
        return "classifier"
    if exts == frozenset({".yaml"}):
        return "config.yaml"
    return "model.safetensors"


def test_canonical_types_match_comfyui_models_endpoint() -> None:
    # /models lists the 27 type names in this order (COMFYUI.md §4, comfyui-samples/models.json)
    listed = sample("models.json")
    assert list(CANONICAL_TYPES) == listed[: len(CANONICAL_TYPES)]


def test_generated_yaml_uses_only_known_keys(tmp_path: Path) -> None:
    data = yaml.safe_load(render_yaml(tmp_path / "models"))
    section = data["comfyui_docker"]
    assert section["is_default"] is True
    keys = set(section) - {"base_path", "is_default"}
    assert "lora" not in keys
    assert set(MODEL_FOLDERS) <= keys
    for key in keys:
        assert key in CANONICAL_TYPES or key in LEGACY_ALIASES or key in EXTRA_FOLDERS
        assert isinstance(section[key], str)
    assert "custom_nodes" not in keys and "input" not in keys and "output" not in keys
    assert validate_yaml_text(render_yaml(tmp_path / "models"), tmp_path) == []


@pytest.mark.parametrize("folder", MODEL_FOLDERS)
def test_a_file_in_each_folder_is_found_by_comfyui_rules(tmp_path: Path, folder: str) -> None:
    ws = Workspace(tmp_path / "workspace")
    ws.init()
    comfy_root = tmp_path / "ComfyUI"
    (comfy_root / "models").mkdir(parents=True)
    name = sample_name(folder)
    target = ws.model_folder(folder) / name
    if name == "model_dir":
        target.mkdir()
    else:
        target.write_bytes(b"x")
    table = resolve_folder_paths([ws.generated_yaml], comfy_root, ws.output)
    assert table[folder][0] == ws.model_folder(folder), "is_default puts the volume first"
    if name == "model_dir":
        assert (table[folder][0] / name).is_dir()
        return
    assert list_models(table, folder) == [name]
    assert find_model(table, folder, name) == target


def test_legacy_subfolders_are_read(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "workspace")
    ws.init()
    (ws.models / "clip").mkdir()
    (ws.models / "clip" / "t5.safetensors").write_bytes(b"x")
    (ws.models / "unet").mkdir()
    (ws.models / "unet" / "u.gguf").write_bytes(b"x")
    (ws.models / "unet" / "u.safetensors").write_bytes(b"x")
    table = resolve_folder_paths([ws.generated_yaml], tmp_path / "ComfyUI", ws.output)
    assert list_models(table, "text_encoders") == ["t5.safetensors"]
    assert list_models(table, "diffusion_models") == ["u.safetensors"]  # .gguf is not a pt extension
    assert find_model(table, "clip", "t5.safetensors") == ws.models / "clip" / "t5.safetensors"


def test_worked_example_from_comfyui_md(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our resolver reproduces the effective table of COMFYUI.md §5's worked example."""
    expected = sample("internal_folder_paths_extra_full.json")
    cfg = tmp_path / "workspace" / "config"
    cfg.mkdir(parents=True)
    yfile = cfg / "extra_model_paths.yaml"
    text = """
myvol:
  base_path: /workspace/vol
  checkpoints: models/checkpoints
  loras: models/lora
  lora: models/lora2
  vae: models/vae
  embeddings: /workspace/abs/embeddings
  text_encoders: |
    models/text_encoders
    models/clip
  unet: models/unet
  clip_vision: models/clip_vision/
  upscale_models: ~/home_upscale
  controlnet: $MY_VAR/controlnet
/workspace:
  checkpoints: /workspace/vol2/checkpoints
  loras: /workspace/vol2/loras
  clip: /workspace/vol2/clip
relvol:
  checkpoints: rel/checkpoints
envvol:
  base_path: $MY_BASE/models
  vae: vae
emptysection:
"""
    yfile.write_text(text)
    monkeypatch.setenv("MY_BASE", "/workspace/envbase")
    table = resolve_folder_paths([yfile], Path("COMFYUI_ROOT"), Path("/workspace/output"))

    def norm(paths: list[Path]) -> list[str]:
        return [str(p).replace(str(tmp_path), "") for p in paths]

    for ctype in (
        "checkpoints",
        "loras",
        "lora",
        "vae",
        "embeddings",
        "text_encoders",
        "diffusion_models",
        "clip_vision",
        "upscale_models",
        "controlnet",
    ):
        assert norm(table[ctype]) == expected[ctype], ctype


@pytest.mark.parametrize(
    ("text", "fatal", "needle"),
    [
        ("", True, "empty"),
        ("# only a comment\n", True, "empty"),
        ("just a string\n", True, "top level"),
        ("a:\n  checkpoints:\n    - x\n    - y\n", True, "not a list"),
        ("a:\n  checkpoints: 5\n", True, "number"),
        ("a:\n  checkpoints:\n", True, "no value"),
        ("a:\n  custom_nodes: /nonexistent/dir\n", True, "does not exist"),
        ("a:\n  lora: /x\n", False, "did you mean 'loras'"),
        ("a:\n  output: /x\n", False, "--output-directory"),
        ("a: [unclosed\n", True, "not valid YAML"),
    ],
)
def test_user_yaml_problems(tmp_path: Path, text: str, fatal: bool, needle: str) -> None:
    problems = validate_yaml_text(text, tmp_path)
    assert problems, text
    assert any(p.fatal == fatal and needle in p.message for p in problems), problems


def test_valid_user_yaml_has_no_problems(tmp_path: Path) -> None:
    text = "mine:\n  base_path: /data\n  checkpoints: ckpts\n  loras: |\n    a\n    b\nempty:\n"
    assert validate_yaml_text(text, tmp_path) == []


def test_suggestions() -> None:
    assert suggest_folder("lora") == "loras"
    assert suggest_folder("unet") == "diffusion_models"
    assert suggest_folder("checkpoint") == "checkpoints"
    assert suggest_folder("zzzz") is None


def _real_comfyui() -> Path:
    root = os.environ.get("COMFYUI_ROOT")
    if not root or not (Path(root) / "main.py").is_file():
        pytest.skip("COMFYUI_ROOT does not point at a real ComfyUI (main.py); opt-in test")
    return Path(root)


@pytest.mark.real_comfyui
def test_real_comfyui_lists_every_folder(tmp_path: Path, free_port: int) -> None:
    root = _real_comfyui()
    ws = Workspace(tmp_path / "workspace")
    ws.init()
    for folder in MODEL_FOLDERS:
        name = sample_name(folder)
        if name != "model_dir":
            (ws.model_folder(folder) / name).write_bytes(b"x")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    proc = subprocess.Popen(
        [
            python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(free_port),
            "--output-directory",
            str(ws.output),
            "--input-directory",
            str(ws.uploads),
            "--extra-model-paths-config",
            str(ws.generated_yaml),
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/system_stats", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, "ComfyUI exited during start"
                time.sleep(0.5)
        for folder in MODEL_FOLDERS:
            name = sample_name(folder)
            if name in ("model_dir",):
                continue
            listed = json.loads(urllib.request.urlopen(f"{base}/models/{folder}", timeout=10).read())
            assert name in listed, folder
    finally:
        proc.send_signal(2)
        proc.wait(timeout=30)
