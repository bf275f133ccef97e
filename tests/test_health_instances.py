"""readiness() with one ComfyUI per GPU: ready while any instance runs, healthy while any is not
broken for good (one blocked GPU must not mark a container whose other GPUs work unhealthy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyui_docker.health import readiness
from comfyui_docker.instance import Instance
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor.manager import State, Status


class StatesOnly:
    """A supervisor that only reports the states it is given (what readiness reads)."""

    def __init__(self, states: dict[str, State]) -> None:
        self.states = states

    def status(self, name: str) -> Status:
        return Status(name, self.states[name], detail=f"{name} detail")

    def log_tail(self, name: str, lines: int) -> list[str]:
        return [f"{name}: last line"]

    async def restart(self, name: str) -> None:
        raise AssertionError("readiness never restarts")


def two_gpus(tmp_path: Path, first: State, second: State) -> Services:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"), "COMFYUI_INTERNAL_PORT": "18188"})
    services = Services.create(settings)
    services.instances = [Instance.on_gpu(0, 18188, 0), Instance.on_gpu(1, 18189, 1)]
    services.supervisor = StatesOnly({"comfyui-0": first, "comfyui-1": second})
    return services


@pytest.mark.parametrize(
    ("first", "second", "ready", "healthy", "status"),
    [
        (State.RUNNING, State.RUNNING, True, True, "ok"),
        (State.RUNNING, State.BLOCKED, True, True, "degraded"),
        (State.RUNNING, State.FATAL, True, True, "degraded"),
        (State.STARTING, State.BLOCKED, False, True, "starting"),
        (State.BLOCKED, State.FATAL, False, False, "failed"),
    ],
)
def test_one_broken_instance_leaves_the_container_healthy(
    tmp_path: Path, first: State, second: State, ready: bool, healthy: bool, status: str
) -> None:
    report = readiness(two_gpus(tmp_path, first, second))
    assert (report["ready"], report["healthy"], report["status"]) == (ready, healthy, status)
    assert [i["name"] for i in report["instances"]] == ["comfyui-0", "comfyui-1"]
    assert [i["gpu"] for i in report["instances"]] == [0, 1]
    broken = [i for i in report["instances"] if i["state"] in ("blocked", "fatal")]
    assert all(i["log_tail"] == [f"{i['name']}: last line"] for i in broken)
    if broken and ready:  # the detail names the instance that does not run
        assert broken[0]["name"] in report["comfyui"]["detail"]
