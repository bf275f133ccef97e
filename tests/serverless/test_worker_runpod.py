"""The worker beyond the local test server: jobs taken from RunPod's job API (a fake on 127.0.0.1)
with progress posted through the SDK's `progress_update`, outputs uploaded to S3 through the SDK's
helper (a fake S3), `install_missing` from a preset on the volume, `--test_input`, bad settings."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fakes.comfyui_root.fake_comfy import png
from fakes.model_host import ModelHost
from fakes.runpod_api import FakeS3, RunPodJobs

from .conftest import (
    CLI,
    Worker,
    api_graph,
    b64,
    decoded_size,
    launch,
    load_image_graph,
    slow_graph,
    worker_env,
)

#: A safetensors file whose header names a tensor: the fake ComfyUI's loaders accept it.
MODEL = (lambda header: len(header).to_bytes(8, "little") + header + b"\0\0\0\0")(
    json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
)


def wait_for(check: Any, timeout: float, worker: Worker) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited with {worker.proc.returncode}:\n{worker.log()[-3000:]}")
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s:\n{worker.log()[-3000:]}")


def test_jobs_from_runpod_report_progress_and_results(tmp_path: Path, stopper: list[Worker]) -> None:
    with RunPodJobs() as jobs:
        env = worker_env(
            tmp_path,
            FAKE_COMFYUI_STEP_SECONDS="0.05",
            RUNPOD_SKIP_AUTO_SYSTEM_CHECKS="true",  # the SDK's network check dials 8.8.8.8
            REFRESH_WORKER="true",
            **jobs.env(),
        )
        jobs.add("job-slow", {"workflow": slow_graph(40)})  # ~2 s of sampler-like steps
        jobs.add("job-bad", {"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
        worker = launch(tmp_path, env, serve_api=False)
        stopper.append(worker)
        result = wait_for(lambda: jobs.result("job-slow"), 60, worker)
        assert result["stopPod"] is True  # REFRESH_WORKER: RunPod replaces the worker after the job
        (image,) = result["output"]["images"][:1]
        assert image["type"] == "base64" and png.size_of(base64.b64decode(image["data"])) == (8, 8)
        progress = [
            p.body["output"] for p in jobs.posts_for("job-slow") if p.body.get("status") == "IN_PROGRESS"
        ]
        stages = [p["stage"] for p in progress]
        assert "running" in stages and stages[-1] == "sending"
        steps = [p for p in progress if p.get("node") == "3" and "step" in p]
        assert steps and steps[-1]["steps"] == 40 and steps[-1]["title"] == "node 3 (Slow, ColorTransfer)"
        assert 3 <= len(progress) <= 12  # throttled: about two a second over ~2 s
        bad = wait_for(lambda: jobs.result("job-bad"), 30, worker)
        assert "the node type 'NoSuchNode' is not installed in ComfyUI" in bad["error"]
        log = worker.log()
        assert "ComfyUI ready" in log and "first job accepted" in log
        assert worker.stop() == 0
    comfy_log = (worker.workspace / "logs" / "comfyui.log").read_text()
    assert "Stopped server" in comfy_log  # ComfyUI got its clean SIGINT


def test_a_job_runpod_stops_leaves_comfyuis_queue(tmp_path: Path, stopper: list[Worker]) -> None:
    """A cancel (or the endpoint's execution timeout) reaches ComfyUI: the prompt is interrupted,
    and the next job does not wait behind it."""
    with RunPodJobs() as jobs:
        env = worker_env(
            tmp_path, FAKE_COMFYUI_STEP_SECONDS="0.02", RUNPOD_SKIP_AUTO_SYSTEM_CHECKS="true", **jobs.env()
        )
        worker = launch(tmp_path, env, serve_api=False)
        stopper.append(worker)
        jobs.add("job-long", {"workflow": slow_graph(4000)})  # 80 s of work

        def comfyui_queue() -> dict[str, Any]:
            try:
                with urllib.request.urlopen(worker.comfyui_url + "/queue", timeout=2) as resp:
                    answer: dict[str, Any] = json.loads(resp.read())
            except OSError:  # not listening yet
                return {}
            return answer

        wait_for(lambda: comfyui_queue().get("queue_running"), 60, worker)
        jobs.stop("job-long")
        wait_for(lambda: comfyui_queue() == {"queue_running": [], "queue_pending": []}, 10, worker)
        started = time.monotonic()
        jobs.add("job-next", {"workflow": api_graph(10, 10, prefix="sl/next")})
        result = wait_for(lambda: jobs.result("job-next"), 30, worker)
        assert time.monotonic() - started < 10
        assert png.size_of(base64.b64decode(result["output"]["images"][0]["data"])) == (10, 10)
        assert "Job stopped" in worker.log()


def test_outputs_go_to_s3_through_the_sdks_helper(tmp_path: Path, stopper: list[Worker]) -> None:
    with FakeS3() as s3:
        env = worker_env(
            tmp_path,
            BUCKET_ENDPOINT_URL=s3.url,
            BUCKET_ACCESS_KEY_ID="AKIDTEST",
            BUCKET_SECRET_ACCESS_KEY="secret-test",
        )
        worker = launch(tmp_path, env)
        stopper.append(worker)
        temp_before = worker.temp_files()
        answer = worker.runsync({"workflow": api_graph(33, 22, prefix="sl/s3")})
        assert answer["status"] == "COMPLETED", answer
        (image,) = answer["output"]["images"]
        assert (
            image["type"] == "s3_url" and image["filename"] == "s3_00001_.png" and image["media"] == "image"
        )
        url = urllib.parse.urlsplit(image["data"])
        assert f"{url.scheme}://{url.netloc}" == s3.url and "X-Amz-Signature" in url.query
        stored = s3.objects[url.path]
        assert url.path.startswith(f"/{time.strftime('%m-%y')}/{answer['id']}/") and url.path.endswith(".png")
        assert png.size_of(stored.body) == (33, 22) and stored.content_type == "image/png"
        assert "secret-test" not in worker.log()
        assert worker.temp_files() == temp_before  # the copies made for the upload are gone


def test_install_missing_downloads_from_a_preset_on_the_volume(tmp_path: Path, stopper: list[Worker]) -> None:
    with ModelHost() as host:
        config = tmp_path / "ws" / "config"
        config.mkdir(parents=True)
        url = host.add("/tiny-test.safetensors", MODEL)
        (config / "presets.yaml").write_text(
            f"""presets:
  TINY_TEST_MODEL:
    name: Tiny test model
    type: image
    files: [{{path: checkpoints/tiny-test.safetensors, url: "{url}", size: {len(MODEL)}}}]
"""
        )
        worker = launch(tmp_path, worker_env(tmp_path))
        stopper.append(worker)
        graph = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-test.safetensors"}},
            "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 24, "height": 16, "batch_size": 1}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
            "4": {
                "class_type": "SaveImage",
                "inputs": {"images": ["3", 0], "filename_prefix": "sl/installed"},
            },
        }
        asked = worker.runsync({"workflow": graph})
        assert asked["status"] == "FAILED"
        assert f"checkpoints/tiny-test.safetensors (preset TINY_TEST_MODEL; {url})" in asked["error"]
        assert not host.requests
        answer = worker.runsync({"workflow": graph, "install_missing": True})
        assert answer["status"] == "COMPLETED", answer
        assert decoded_size(answer["output"]["images"][0]) == (24, 16)
        assert (worker.workspace / "models" / "checkpoints" / "tiny-test.safetensors").read_bytes() == MODEL


def test_test_input_runs_one_job_and_exits(tmp_path: Path) -> None:
    picture = png.encode(5, 4, 0xFFFFFF, {})
    job = {
        "input": {"workflow": load_image_graph("t.png"), "images": [{"name": "t.png", "image": b64(picture)}]}
    }
    env = worker_env(tmp_path)
    done = subprocess.run(
        [*CLI, "serverless", "--test_input", json.dumps(job)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "completed successfully" in done.stdout + done.stderr
    bad = {"input": {"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}}}
    failed = subprocess.run(
        [*CLI, "serverless", "--test_input", json.dumps(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert "Workflow validation failed" in failed.stdout + failed.stderr


def test_without_comfyui_jobs_say_why_and_ask_for_another_worker(tmp_path: Path) -> None:
    env = worker_env(tmp_path, COMFYUI_ROOT=str(tmp_path / "no-comfyui"))
    job = {"input": {"workflow": api_graph()}}
    done = subprocess.run(
        [*CLI, "serverless", "--test_input", json.dumps(job)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "ComfyUI is not_installed on this worker: no main.py in COMFYUI_ROOT=" in out
    assert "ComfyUI is not_installed: jobs will fail with the reason" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"BUCKET_ENDPOINT_URL": "http://127.0.0.1:9"}, "BUCKET_ACCESS_KEY_ID: BUCKET_ENDPOINT_URL is set"),
        (
            {"BUCKET_ENDPOINT_URL": "s3.example.com"},
            "BUCKET_ENDPOINT_URL: 's3.example.com' is not an http(s) URL",
        ),
        ({"COMFYUI_JOB_TIMEOUT": "soon"}, "COMFYUI_JOB_TIMEOUT: 'soon' is not a number of seconds"),
    ],
)
def test_bad_settings_stop_the_start(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    env = worker_env(tmp_path, **extra)
    done = subprocess.run([*CLI, "serverless"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "ws").exists()  # nothing started


def test_without_the_sdk_the_command_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "no-sdk" / "runpod"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    env = {**worker_env(tmp_path), "PYTHONPATH": str(tmp_path / "no-sdk")}
    done = subprocess.run([*CLI, "serverless"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "error: the RunPod SDK cannot be imported: hidden for this test" in done.stderr
    assert "pip install 'comfyui-docker[serverless]'" in done.stderr
    assert "comfyui: stopped" in done.stderr  # ComfyUI, already booting, was stopped
