"""`comfyui-docker serverless` through the RunPod SDK's local test server (POST /runsync), with the
fake ComfyUI supervised behind it: what a client of worker-comfyui 5.x sends and gets back, our
additions, every failure as the job's error, and the next job served after each."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import TINY_SAFETENSORS, free_port

from .conftest import (
    CLI,
    Worker,
    api_graph,
    b64,
    decoded_size,
    launch,
    load_image_graph,
    slow_graph,
    ui_graph,
    worker_env,
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    base = tmp_path_factory.mktemp("serverless")
    running = launch(base, worker_env(base, FAKE_COMFYUI_STEP_SECONDS="0.02"))
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.log()[-3000:]


def test_api_workflow_returns_the_png_in_base64(worker: Worker) -> None:
    answer = worker.runsync({"workflow": api_graph(64, 48)})
    assert answer["status"] == "COMPLETED", answer
    (image,) = answer["output"]["images"]
    assert image["type"] == "base64" and image["media"] == "image"
    assert image["filename"].startswith("api_") and image["filename"].endswith("_.png")
    assert decoded_size(image) == (64, 48)
    assert "errors" not in answer["output"]
    saved = worker.workspace / "output" / "sl" / image["filename"]
    assert base64.b64decode(image["data"]) == saved.read_bytes()  # kept on the volume, as on a pod


def test_ui_workflow_is_converted(worker: Worker) -> None:
    answer = worker.runsync({"workflow": ui_graph(40, 30)})
    assert answer["status"] == "COMPLETED", answer
    (image,) = answer["output"]["images"]
    assert decoded_size(image) == (40, 30)
    # the editor's workflow is embedded, so the PNG opens in ComfyUI as it was
    assert "workflow" in png.text_chunks(base64.b64decode(image["data"]))


def test_an_image_in_images_is_read_by_load_image(worker: Worker) -> None:
    picture = png.encode(23, 17, 0xAA5500, {})
    answer = worker.runsync(
        {
            "workflow": load_image_graph("client-upload.png"),
            "images": [{"name": "client-upload.png", "image": "data:image/png;base64," + b64(picture)}],
        }
    )
    assert answer["status"] == "COMPLETED", answer
    (image,) = answer["output"]["images"]
    assert decoded_size(image) == (23, 17)  # LoadImage read the uploaded file
    assert not (worker.workspace / "uploads" / "client-upload.png").exists()  # removed after the job


def test_set_overrides_inputs_by_title(worker: Worker) -> None:
    answer = worker.runsync(
        {
            "workflow": api_graph(64, 48, prefix="sl/set"),
            "set": {"1.width": 20, "Result.filename_prefix": "sl/over"},
        }
    )
    assert answer["status"] == "COMPLETED", answer
    (image,) = answer["output"]["images"]
    assert image["filename"].startswith("over_") and decoded_size(image) == (20, 48)
    bad = worker.runsync({"workflow": api_graph(), "set": {"1.width": "wide"}})
    assert bad["status"] == "FAILED" and "width" in bad["error"]


def test_a_broken_workflow_names_the_node_and_input(worker: Worker) -> None:
    graph = api_graph()
    del graph["2"]["inputs"]["images"]
    answer = worker.runsync({"workflow": graph})
    assert answer["status"] == "FAILED"
    error = answer["error"]
    assert error.startswith("Workflow validation failed:")
    assert "node 2 (Result, SaveImage) input 'images': is not connected and has no value" in error
    graph = api_graph()
    graph["1"]["inputs"]["width"] = 0
    answer = worker.runsync({"workflow": graph})
    assert "node 1 (EmptyImage) input 'width': value 0 smaller than min of 1" in answer["error"]


def test_a_failing_node_returns_its_exception(worker: Worker) -> None:
    checkpoints = worker.workspace / "models" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "empty-model.safetensors").write_bytes(TINY_SAFETENSORS)
    graph = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "Load it"},
            "inputs": {"ckpt_name": "empty-model.safetensors"},
        },
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "sl/never"}},
    }
    answer = worker.runsync({"workflow": graph})
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith(
        "Workflow execution error: node 1 (Load it, CheckpointLoaderSimple) failed:"
    )
    assert "RuntimeError: ERROR: Could not detect model type of: empty-model.safetensors" in answer["error"]
    assert str(worker.workspace) not in answer["error"]  # no server paths
    assert worker.runsync({"workflow": api_graph()})["status"] == "COMPLETED"  # the next job is served


def test_a_missing_model_is_answered_with_its_preset_and_url(worker: Worker) -> None:
    graph = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"},
        },
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "sl/never"}},
    }
    answer = worker.runsync({"workflow": graph})
    assert answer["status"] == "FAILED"
    error = answer["error"]
    assert "the model 'v1-5-pruned-emaonly-fp16.safetensors' is not installed" in error
    assert (
        "checkpoints/v1-5-pruned-emaonly-fp16.safetensors (preset SD15_BASE; https://huggingface.co/" in error
    )
    assert '"install_missing": true' in error


def test_bad_input_is_answered_in_worker_comfyuis_words(worker: Worker) -> None:
    assert worker.runsync({"images": []})["error"].startswith("Missing 'workflow' parameter")
    assert worker.runsync({"workflow": api_graph(), "images": [{"name": "x.png"}]})["error"] == (
        "'images' must be a list of objects with 'name' and 'image' keys"
    )
    broken = worker.runsync({"workflow": api_graph(), "images": [{"name": "x.png", "image": "not base64!"}]})
    assert broken["error"].startswith("Failed to upload one or more input images: images[0] ('x.png')")
    unknown = worker.runsync({"template": "no_such_template_anywhere"})
    assert unknown["status"] == "FAILED" and "no_such_template_anywhere" in unknown["error"]


def test_a_template_names_the_models_it_needs(worker: Worker) -> None:
    answer = worker.runsync({"template": "sdxlturbo_example"})
    assert answer["status"] == "FAILED"
    assert "The workflow needs model files that are not installed" in answer["error"]
    assert "https://" in answer["error"]


def test_health_in_serverless_mode_asks_comfyui(worker: Worker) -> None:
    """Docker's HEALTHCHECK (`comfyui-docker health`) works without a dashboard."""
    env = {**worker.env, "MODE": "serverless"}
    done = subprocess.run([*CLI, "health", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {
        "live": True,
        "ok": True,
        "mode": "serverless",
        "comfyui": {"answers": True},
    }
    dead = {**env, "COMFYUI_INTERNAL_PORT": str(free_port())}
    done = subprocess.run([*CLI, "health"], env=dead, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "unhealthy: ComfyUI does not answer" in done.stdout


def test_twenty_jobs_leave_no_temp_files_and_a_flat_rss(worker: Worker) -> None:
    picture = png.encode(16, 16, 0x00FF00, {})

    def job(i: int) -> dict[str, Any]:
        return {
            "workflow": load_image_graph(f"batch-{i}.png", prefix=f"sl/batch{i}"),
            "images": [{"name": f"batch-{i}.png", "image": b64(picture)}],
        }

    for i in range(5):  # warm up: first imports, connection pools, caches
        assert worker.runsync(job(i))["status"] == "COMPLETED"
    before = worker.rss()
    temp_before = worker.temp_files()
    for i in range(5, 25):
        answer = worker.runsync(job(i))
        assert answer["status"] == "COMPLETED", answer
        assert decoded_size(answer["output"]["images"][0]) == (16, 16)
    grown = worker.rss() - before
    assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1024**2:.1f} MiB over 20 jobs"
    assert worker.temp_files() == temp_before  # nothing left behind by 20 jobs
    assert list((worker.workspace / "uploads").iterdir()) == []


def test_a_comfyui_crash_fails_the_job_and_the_next_one_is_served(worker: Worker) -> None:
    """Last in this module: ComfyUI is killed (as the OOM killer would) under a running job."""
    answers: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: answers.append(worker.runsync({"workflow": slow_graph(2000)})))
    runner.start()
    first = worker.comfyui()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(worker.comfyui_url + "/queue", timeout=2) as resp:
            if json.loads(resp.read())["queue_running"]:
                break
        time.sleep(0.05)
    first.kill()
    runner.join(60)
    (answer,) = answers
    assert answer["status"] == "FAILED"
    assert "ComfyUI stopped while running the workflow (killed by signal 9" in answer["error"]
    after = worker.runsync({"workflow": api_graph(30, 20, prefix="sl/after")}, timeout=120)
    assert after["status"] == "COMPLETED", after
    assert decoded_size(after["output"]["images"][0]) == (30, 20)
    assert worker.comfyui().pid != first.pid


def test_the_job_timeout_interrupts_the_prompt(tmp_path: Path, stopper: list[Worker]) -> None:
    env = worker_env(tmp_path, COMFYUI_JOB_TIMEOUT="1.5", FAKE_COMFYUI_STEP_SECONDS="0.02")
    worker = launch(tmp_path, env)
    stopper.append(worker)
    started = time.monotonic()
    answer = worker.runsync({"workflow": slow_graph(4000)})  # 80 s of work
    assert time.monotonic() - started < 10
    assert answer["status"] == "FAILED"
    assert (
        "did not finish within COMFYUI_JOB_TIMEOUT=1.5 s and was interrupted at node 3 (Slow, ColorTransfer)"
        in (answer["error"])
    )
    quick = worker.runsync({"workflow": api_graph(12, 10, prefix="sl/quick")})
    assert quick["status"] == "COMPLETED", quick  # not stuck behind the interrupted prompt
    with urllib.request.urlopen(worker.comfyui_url + "/queue", timeout=2) as resp:
        assert json.loads(resp.read()) == {"queue_running": [], "queue_pending": []}
