"""The state machine with an injected process factory and sleep (no real processes, no waiting)."""

from __future__ import annotations

import asyncio

import pytest

from comfyui_docker.events import EventBus, ServiceState
from comfyui_docker.supervisor import ProcessSpec, Service, State, Timings
from comfyui_docker.supervisor.states import check_move


class ScriptedChild:
    """Exits with `code` after `life` seconds (loop time)."""

    def __init__(self, pid: int, code: int, life: float) -> None:
        self.pid = pid
        self.stdout = None
        self._code = code
        self._done = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(life, self._finish)

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(self._code)

    @property
    def returncode(self) -> int | None:
        return self._done.result() if self._done.done() else None

    async def wait(self) -> int:
        return int(await asyncio.shield(self._done))


async def test_crash_loop_backoff_sequence_then_fatal() -> None:
    slept: list[float] = []
    spawned: list[int] = []

    async def factory(spec: ProcessSpec) -> ScriptedChild:
        spawned.append(len(spawned) + 1)
        return ScriptedChild(10_000_000 + len(spawned), 3, 0.01)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    timings = Timings(retries=4, backoff_base=1.0, backoff_cap=4.0, start_grace=60)
    bus = EventBus()
    sub = bus.subscribe(["service_state"])
    service = Service(ProcessSpec("svc", ["x"], timings=timings), bus=bus, factory=factory, sleep=sleep)
    service.start()
    await service.wait_state(State.FATAL, timeout=5)
    assert slept == [1.0, 2.0, 4.0, 4.0]  # doubles, capped
    assert len(spawned) == 5 and service.failures == 5
    assert "exited with code 3" in service.detail
    states = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        assert isinstance(event, ServiceState)
        states.append(event.state)
    assert states[:3] == ["starting", "running", "backoff"] and states[-1] == "fatal"


async def test_spawn_failure_counts_as_a_failed_start() -> None:
    async def factory(spec: ProcessSpec) -> ScriptedChild:
        raise FileNotFoundError(2, "No such file or directory")

    async def sleep(seconds: float) -> None:
        pass

    service = Service(ProcessSpec("svc", ["/nope"], timings=Timings(retries=1)), factory=factory, sleep=sleep)
    service.start()
    await service.wait_state(State.FATAL, timeout=5)
    assert "cannot start: No such file or directory" in service.detail


def test_illegal_moves_are_refused() -> None:
    check_move(State.STOPPED, State.STARTING)
    with pytest.raises(RuntimeError):
        check_move(State.STOPPED, State.RUNNING)
    with pytest.raises(RuntimeError):
        check_move(State.FATAL, State.RUNNING)
