"""Opt-in: the serverless worker with a real ComfyUI 0.33 (COMFYUI_ROOT, COMFYUI_PYTHON), through
the RunPod SDK's local test server, as test_worker_api.py does with the fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import real_comfyui_root

from .conftest import Worker, api_graph, b64, decoded_size, launch, load_image_graph, ui_graph, worker_env

pytestmark = pytest.mark.real_comfyui


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root, why = real_comfyui_root()
    if root is None:
        pytest.skip(f"real ComfyUI: {why}")
    base = tmp_path_factory.mktemp("serverless-real")
    running = launch(base, worker_env(base, comfyui_root=root), wait=180)
    try:
        yield running
    finally:
        assert running.stop(30) == 0, running.log()[-3000:]


def test_api_and_ui_workflows_return_pngs_of_the_asked_size(worker: Worker) -> None:
    api = worker.runsync({"workflow": api_graph(64, 48, prefix="real/api")})
    assert api["status"] == "COMPLETED", api
    assert decoded_size(api["output"]["images"][0]) == (64, 48)
    ui = worker.runsync({"workflow": ui_graph(40, 30, prefix="real/ui")})
    assert ui["status"] == "COMPLETED", ui
    assert decoded_size(ui["output"]["images"][0]) == (40, 30)


def test_an_uploaded_image_is_read_by_load_image(worker: Worker) -> None:
    picture = png.encode(23, 17, 0xAA5500, {})
    answer = worker.runsync(
        {
            "workflow": load_image_graph("real-upload.png", prefix="real/loaded"),
            "images": [{"name": "real-upload.png", "image": b64(picture)}],
        }
    )
    assert answer["status"] == "COMPLETED", answer
    assert decoded_size(answer["output"]["images"][0]) == (23, 17)
    assert not (worker.workspace / "uploads" / "real-upload.png").exists()


def test_a_broken_workflow_names_the_node_and_input(worker: Worker) -> None:
    graph = api_graph()
    del graph["2"]["inputs"]["images"]
    answer = worker.runsync({"workflow": graph})
    assert answer["status"] == "FAILED"
    assert "node 2 (Result, SaveImage) input 'images': is not connected and has no value" in answer["error"]
    assert worker.runsync({"workflow": api_graph(8, 8, prefix="real/next")})["status"] == "COMPLETED"
