"""The supervisor against the fake ComfyUI as a real subprocess (COMFYUI.md §7)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psutil
import pytest
from supervised import FAST, MakeService

from comfyui_docker.events import ServiceState
from comfyui_docker.supervisor import State, Timings


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_starts_ready_logs_and_publishes_states(make_service: MakeService) -> None:
    service = make_service()
    assert service.bus is not None
    sub = service.bus.subscribe(["service_state"])
    service.start()
    await service.wait_state(State.RUNNING, timeout=15)
    status = service.status()
    assert status.pid is not None and alive(status.pid)
    states = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        assert isinstance(event, ServiceState)
        states.append(event.state)
    assert states == ["starting", "running"]
    log_text = (service.logs.file.path if service.logs.file else None).read_text()  # type: ignore[union-attr]
    assert "Starting server" in log_text and "\x1b[" not in log_text
    first = log_text.splitlines()[0]
    assert first[:4].isdigit() and first[10] == " "  # "YYYY-MM-DD HH:MM:SS.mmm line"
    assert any("Setting output directory to:" in line for line in service.logs.tail(100))


async def test_sigkill_comes_back_within_first_backoff_step(make_service: MakeService) -> None:
    service = make_service()
    service.start()
    await service.wait_state(State.RUNNING, timeout=15)
    await asyncio.sleep(FAST.start_grace + 0.2)  # a good start: failures reset
    old = service.status().pid
    assert old is not None
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    await service.wait_state(State.BACKOFF, timeout=5)
    assert (
        "killed by signal 9" in service.detail and f"restarting in {FAST.backoff_base:g} s" in service.detail
    )
    await service.wait_state(State.RUNNING, timeout=15)
    took = time.monotonic() - killed
    new = service.status().pid
    assert new is not None and new != old and alive(new)
    assert took < FAST.backoff(1) + 5.0  # first step of the backoff + one fake start-up


async def test_exit_at_once_every_time_ends_fatal_with_log_lines(make_service: MakeService) -> None:
    service = make_service(mode="exit_immediately")
    service.start()
    await service.wait_state(State.FATAL, timeout=20)
    assert service.failures == FAST.retries + 1
    assert "gave up after 3 failed starts" in service.detail
    assert "exiting at once" in service.detail  # the child's own last lines
    assert "exited with code 1" in service.detail


async def test_sigint_ignoring_child_gets_sigterm_then_sigkill(make_service: MakeService) -> None:
    service = make_service(mode="ignore_sigint,ignore_sigterm")
    service.start()
    await service.wait_state(State.RUNNING, timeout=15)
    pid = service.status().pid
    assert pid is not None
    started = time.monotonic()
    await service.stop()
    took = time.monotonic() - started
    assert not alive(pid)
    assert took >= FAST.stop_sigint + FAST.stop_sigterm - 0.1
    tail = "\n".join(service.logs.tail(10))
    assert "sending SIGTERM" in tail and "sending SIGKILL" in tail
    assert service.state == State.STOPPED and service.last_exit == -signal.SIGKILL


async def test_sigint_stop_is_clean_even_if_we_ignore_sigint(make_service: MakeService) -> None:
    """The `&` gotcha: our own SIGINT is ignored; the child must still get a default SIGINT."""
    service = make_service()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        service.start()
        await service.wait_state(State.RUNNING, timeout=15)
    finally:
        signal.signal(signal.SIGINT, previous)
    started = time.monotonic()
    await service.stop()
    assert time.monotonic() - started < FAST.stop_sigint
    assert service.last_exit == 0
    assert any("Stopped server" in line for line in service.logs.tail(10))


async def test_slow_start_stays_starting_then_runs(make_service: MakeService) -> None:
    service = make_service(delay=1.5)
    service.start()
    await asyncio.sleep(1.0)
    assert service.state == State.STARTING
    await service.wait_state(State.RUNNING, timeout=15)
    assert service.failures == 0


async def test_hang_is_a_failed_start_and_the_child_is_stopped(make_service: MakeService) -> None:
    timings = Timings(**{**FAST.__dict__, "ready_timeout": 1.5, "retries": 0})
    service = make_service(mode="hang", timings=timings)
    service.start()
    await asyncio.sleep(0.5)
    pid = service.child.pid if service.child else None
    assert pid is not None
    await service.wait_state(State.FATAL, timeout=15)
    assert "not ready after 1.5 s" in service.detail
    assert not alive(pid)


async def test_foreign_argv_is_never_ready(make_service: MakeService) -> None:
    timings = Timings(**{**FAST.__dict__, "ready_timeout": 1.5, "retries": 0})
    service = make_service(mode="bad_argv", timings=timings)
    service.start()
    await service.wait_state(State.FATAL, timeout=15)
    assert "not ready" in service.detail


async def test_restart_on_request_and_from_fatal(make_service: MakeService) -> None:
    service = make_service()
    service.start()
    await service.wait_state(State.RUNNING, timeout=15)
    old = service.status().pid
    await service.restart()
    await service.wait_state(State.RUNNING, timeout=15)
    assert service.status().pid != old and service.restarts == 1
    assert old is not None and not alive(old)


async def test_precheck_holds_not_installed(make_service: MakeService) -> None:
    async def precheck() -> tuple[State, str]:
        return State.NOT_INSTALLED, "set COMFYUI_ROOT"

    service = make_service(precheck=precheck)
    service.start()
    await service.wait_state(State.NOT_INSTALLED, timeout=5)
    assert service.child is None and service.detail == "set COMFYUI_ROOT"


async def test_blocked_restart_forces_the_start(make_service: MakeService) -> None:
    async def precheck() -> tuple[State, str]:
        return State.BLOCKED, "CUDA mismatch"

    service = make_service(precheck=precheck)
    service.start()
    await service.wait_state(State.BLOCKED, timeout=5)
    await service.restart()
    await service.wait_state(State.RUNNING, timeout=15)


@pytest.mark.parametrize(("failures", "delay"), [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)])
def test_backoff_doubles_up_to_the_cap(failures: int, delay: float) -> None:
    assert FAST.backoff(failures) == pytest.approx(delay)


async def test_kill_all_is_the_last_resort(make_service: MakeService) -> None:
    from comfyui_docker.supervisor import Supervisor

    service = make_service(mode="ignore_sigint,ignore_sigterm")
    sup = Supervisor()
    sup.add(service)
    service.start()
    await service.wait_state(State.RUNNING, timeout=15)
    pid = service.status().pid
    assert pid is not None
    sup.kill_all()
    await service.wait_state(State.BACKOFF, State.STARTING, timeout=5)
    assert not alive(pid)
