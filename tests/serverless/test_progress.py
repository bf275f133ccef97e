"""Progress through the SDK's progress_update: stage, node, step; throttled; only with RunPod's API."""

from __future__ import annotations

from typing import Any

from comfyui_docker.serverless.progress import Progress, runpod_job_api


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_updates_carry_stage_node_and_step_and_are_throttled() -> None:
    sent: list[dict[str, Any]] = []
    clock = Clock()
    job = {"id": "job-1"}
    progress = Progress(
        job, lambda j, update: sent.append({"job": j["id"], **update}), interval=0.5, clock=clock
    )
    progress.stage("uploading", images=1)
    progress("queued", {"prompt_id": "p", "nodes": 4})
    progress("cached", {"nodes": ["1"]})
    progress("node", {"node": "3", "title": "node 3 (Sampler, KSampler)"})
    for step in range(1, 21):
        clock.now += 0.1
        progress("progress", {"node": "3", "value": step, "max": 20})
    progress.stage("sending")
    assert sent[0] == {"job": "job-1", "stage": "uploading", "images": 1}
    assert sent[1] == {"job": "job-1", "stage": "queued", "nodes": 4}
    assert sent[2] == {
        "job": "job-1",
        "stage": "running",
        "node": "3",
        "title": "node 3 (Sampler, KSampler)",
        "nodes_done": 1,
        "nodes": 4,
    }
    steps = [u["step"] for u in sent if "step" in u]
    assert steps[-1] == 20 and len(steps) <= 6  # 2 s of steps at one update per 0.5 s, plus the last
    assert sent[-1] == {"job": "job-1", "stage": "sending"}
    assert progress.node is None  # nothing runs while the outputs are sent


def test_without_runpods_job_api_nothing_is_sent() -> None:
    assert not runpod_job_api({})
    assert runpod_job_api({"RUNPOD_WEBHOOK_POST_OUTPUT": "https://api.runpod.ai/v2/x/job-done/$ID"})
    progress = Progress({"id": "j"}, None)
    progress.stage("running")
    progress("node", {"node": "1", "title": "node 1 (EmptyImage)"})
    assert progress.sent == 0 and progress.node == "node 1 (EmptyImage)"
