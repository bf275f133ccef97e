"""`comfyui-docker convert` and `run` end to end: against the fake ComfyUI in a subprocess.

The fake (tests/fakes/comfyui_root/main.py) follows COMFYUI.md: real /object_info, validation
errors, WebSocket frames, /history and /view; EmptyImage -> SaveImage really writes a PNG.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_samples import OBJECT_INFO, ground_truth
from comfyui_docker.cli import main
from comfyui_docker.workflows.convert import convert
from comfyui_docker.workspace import Workspace
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fakes" / "comfyui_root" / "main.py"

UI_WORKFLOW = {
    "last_node_id": 3,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            "widgets_values": [64, 48, 1, 0],
        },
        {
            "id": 2,
            "type": "SaveImage",
            "mode": 0,
            "title": "Result",
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "widgets_values": ["e2e/test"],
        },
        {
            "id": 3,
            "type": "MarkdownNote",
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "widgets_values": ["# notes"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
}


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _start(
    root: Path, python: str, ws: Workspace, port: int, log_path: Path, wait_s: float
) -> subprocess.Popen[bytes]:
    """ComfyUI's main.py (real or fake) on 127.0.0.1:port, reading the workspace's models."""
    cmd = [
        python,
        "main.py",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--cpu",
        "--output-directory",
        str(ws.output),
        "--input-directory",
        str(ws.uploads),
        "--extra-model-paths-config",
        str(ws.generated_yaml),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/system_stats", proc, wait_s)
    except RuntimeError:
        _stop(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One fake ComfyUI for the module, reading the models of its own workspace."""
    if not FAKE.is_file():
        pytest.skip("the fake ComfyUI is not in this tree")
    tmp = tmp_path_factory.mktemp("comfy")
    ws = Workspace(tmp / "workspace")
    ws.init()
    port = free_port()
    proc = _start(FAKE.parent, sys.executable, ws, port, tmp / "fake.log", 20)
    try:
        yield {"ws": ws, "port": port}
    finally:
        _stop(proc)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A workspace and a port where no ComfyUI listens."""
    ws = Workspace(tmp_path / "workspace")
    ws.init()
    port = free_port()
    monkeypatch.setenv("WORKSPACE_ROOT", str(ws.root))
    monkeypatch.setenv("COMFYUI_INTERNAL_PORT", str(port))
    return {"ws": ws, "port": port, "tmp": tmp_path}


@pytest.fixture
def comfy(server: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The module's fake ComfyUI, with the environment pointing at it."""
    monkeypatch.setenv("WORKSPACE_ROOT", str(server["ws"].root))
    monkeypatch.setenv("COMFYUI_INTERNAL_PORT", str(server["port"]))
    return {**server, "tmp": tmp_path}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_run_a_ui_workflow_saves_its_outputs(
    comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    wf = _write(comfy["tmp"] / "wf.json", UI_WORKFLOW)
    out = comfy["tmp"] / "out"
    code = main(
        ["run", str(wf), "--out", str(out), "--set", "Result.filename_prefix=e2e/cat", "--timeout", "30"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    png = out / "e2e" / "cat_00001_.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in captured.out
    assert "running node 2 (Result, SaveImage)" in captured.err
    # the definitions were fetched from ComfyUI and kept on the volume for offline conversion
    assert (comfy["ws"].cache / "object_info.json").is_file()


def test_validation_error_is_readable(comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "ImageScale",
            "_meta": {"title": "Scale it"},
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "bogus",
                "width": 32,
                "height": 32,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    code = main(["run", str(_write(comfy["tmp"] / "api.json", prompt)), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "node 2 (Scale it, ImageScale) input 'upscale_method'" in err
    assert "bogus" in err and "Traceback" not in err


def test_execution_error_is_readable(comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    (comfy["ws"].models / "checkpoints" / "broken.safetensors").write_bytes(b"not a model")
    prompt = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "Load it"},
            "inputs": {"ckpt_name": "broken.safetensors"},
        },
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    code = main(["run", str(_write(comfy["tmp"] / "api.json", prompt)), "-q", "--timeout", "30"])
    err = capsys.readouterr().err
    assert code == 1
    # what a real ComfyUI 0.33 (safetensors 0.8) says about a file that is no safetensors at all
    assert (
        "node 1 (Load it, CheckpointLoaderSimple) failed: SafetensorError: "
        "Error while deserializing header: header too large" in err
    )
    assert "-> the model file is not a valid safetensors file" in err and "install it again" in err


def test_missing_models_stop_the_run_with_their_urls(
    comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "template:Image_capybara_v0_1_image_edit", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "diffusion_models/capybara_v0.1.safetensors  <- https://huggingface.co/" in err
    assert "--install-missing" in err


def test_install_missing_without_a_url(comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nowhere.safetensors"}}}
    code = main(["run", str(_write(comfy["tmp"] / "api.json", prompt)), "-q", "--install-missing"])
    assert code == 1
    assert "no download URL is known for checkpoints/nowhere.safetensors" in capsys.readouterr().err


def test_unknown_node_names_the_pack(comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "template:templates_mjm_looped_restyler", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "GetImageSizeAndCount" in err and "comfyui-kjnodes" in err


def test_comfyui_down_is_a_clear_error(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    wf = _write(env["tmp"] / "wf.json", UI_WORKFLOW)
    code = main(["run", str(wf), "-q", "--object-info", str(OBJECT_INFO)])
    err = capsys.readouterr().err
    assert code == 1
    assert "not reachable" in err or "does not answer" in err


def test_convert_offline_from_a_saved_object_info(
    env: dict[str, Any], object_info: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    wf = _write(env["tmp"] / "wf.json", UI_WORKFLOW)
    code = main(["convert", str(wf), "--object-info", str(OBJECT_INFO)])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == convert(UI_WORKFLOW, object_info)


def test_convert_uses_the_copy_on_the_volume(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    (env["ws"].cache / "object_info.json").write_bytes(gzip.decompress(OBJECT_INFO.read_bytes()))
    out = env["tmp"] / "prompt.json"
    code = main(["convert", "template:Image_capybara_v0_1_text_to_image", "-o", str(out)])
    assert code == 0
    expected = ground_truth("Image_capybara_v0_1_text_to_image.api.json")
    assert json.loads(out.read_text()) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1]", "JSON object"), (None, "does not exist")],
)
def test_bad_workflow_files(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = env["tmp"] / "bad.json"
    if content is not None:
        path.write_text(content)
    code = main(["convert", str(path), "--object-info", str(OBJECT_INFO)])
    assert code == 1
    assert message in capsys.readouterr().err


def test_templates_command(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "capybara", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert "Image_capybara_v0_1_image_edit" in names


@pytest.fixture
def model_host(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving one 'model' file."""
    root = tmp_path / "host"
    root.mkdir()
    (root / "tiny.safetensors").write_bytes(b"tiny but not a model" * 10)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)


def test_install_missing_downloads_then_runs(
    comfy: dict[str, Any],
    model_host: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow = {
        "last_node_id": 4,
        "nodes": [
            {
                "id": 1,
                "type": "CheckpointLoaderSimple",
                "mode": 0,
                "inputs": [],
                "outputs": [
                    {"name": "MODEL", "type": "MODEL", "links": []},
                    {"name": "CLIP", "type": "CLIP", "links": []},
                    {"name": "VAE", "type": "VAE", "links": [2]},
                ],
                "widgets_values": ["tiny.safetensors"],
                "properties": {
                    "models": [
                        {
                            "name": "tiny.safetensors",
                            "directory": "checkpoints",
                            "url": f"{model_host}/tiny.safetensors",
                        }
                    ]
                },
            },
            {
                "id": 2,
                "type": "EmptyLatentImage",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}],
                "widgets_values": [64, 64, 1],
            },
            {
                "id": 3,
                "type": "VAEDecode",
                "mode": 0,
                "inputs": [
                    {"name": "samples", "type": "LATENT", "link": 1},
                    {"name": "vae", "type": "VAE", "link": 2},
                ],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3]}],
            },
            {
                "id": 4,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 3}],
                "outputs": [],
                "widgets_values": ["x"],
            },
        ],
        "links": [[1, 2, 0, 3, 0, "LATENT"], [2, 1, 2, 3, 1, "VAE"], [3, 3, 0, 4, 0, "IMAGE"]],
    }
    argv = [
        "run",
        str(_write(comfy["tmp"] / "wf.json", workflow)),
        "-q",
        "--install-missing",
        "--timeout",
        "30",
    ]
    installed = comfy["ws"].models / "checkpoints" / "tiny.safetensors"
    # a workflow's URL on a host that is not an allowed model host (here: loopback) is refused
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1 is not an allowed model host" in err and "MODEL_HOSTS" in err
    assert not installed.exists()
    # listed by address, the local host is allowed
    monkeypatch.setenv("MODEL_HOSTS", "huggingface.co,127.0.0.1")
    code = main(argv)
    err = capsys.readouterr().err
    assert installed.read_bytes() == b"tiny but not a model" * 10, err
    assert "installed checkpoints/tiny.safetensors" in err
    # ComfyUI then really tries the file: it is no model, and says so (as a real ComfyUI 0.33 does)
    assert code == 1
    assert "Error while deserializing header: header too large" in err


@pytest.mark.real_comfyui
def test_real_comfyui_runs_a_converted_workflow(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Opt-in: COMFYUI_ROOT points at a real ComfyUI (COMFYUI_PYTHON: its interpreter)."""
    root = os.environ.get("COMFYUI_ROOT")
    if not root or not (Path(root) / "main.py").is_file():
        pytest.skip("COMFYUI_ROOT does not point at a real ComfyUI (main.py); opt-in test")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    proc = _start(Path(root), python, env["ws"], env["port"], env["tmp"] / "comfyui.log", 180)
    try:
        wf = _write(env["tmp"] / "wf.json", UI_WORKFLOW)
        out = env["tmp"] / "out"
        code = main(
            [
                "run",
                str(wf),
                "--out",
                str(out),
                "--set",
                "Result.filename_prefix=real/run",
                "--timeout",
                "120",
            ]
        )
        assert code == 0, capsys.readouterr().err
        assert (out / "real" / "run_00001_.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        _stop(proc)
