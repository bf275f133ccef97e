"""Volume locks: exclusive, taken over when the owner is dead or its heartbeat stops, lost when stolen."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from comfyui_docker.downloads.locks import VolumeLock


async def test_second_holder_waits_until_release(tmp_path: Path) -> None:
    path = tmp_path / "locks/x.lock"
    first = VolumeLock(path, poll=0.01)
    await first.acquire()
    owner = first.owner()
    assert owner is not None and owner["pid"] == os.getpid() and owner["id"] == first.id
    second = VolumeLock(path, poll=0.01)
    waiter = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await first.release()
    await asyncio.wait_for(waiter, 2)
    assert second.held and second.waited and second.still_mine()
    await second.release()
    assert not path.exists()


async def test_lock_of_a_dead_process_on_this_host_is_taken_at_once(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = VolumeLock(path, stale_after=3600, poll=0.01)
    path.write_text(
        json.dumps({"id": "old", "host": lock.host, "pid": 2**22 + 12345, "started": 1.0, "seq": 0})
    )
    await asyncio.wait_for(lock.acquire(), 2)
    assert lock.still_mine()
    assert [p.name for p in tmp_path.iterdir()] == ["x.lock"]  # the stale file was removed
    await lock.release()


async def test_lock_of_another_host_is_taken_when_its_heartbeat_stops(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"id": "pod-a", "host": "other-pod", "pid": 1, "seq": 7}))
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    lock = VolumeLock(path, stale_after=30, poll=1, clock=lambda: now[0], sleep=sleep)
    task = asyncio.create_task(lock.acquire())
    while now[0] < 20:
        await asyncio.sleep(0)
    assert not task.done()  # a live-looking foreign owner is respected
    path.write_text(json.dumps({"id": "pod-a", "host": "other-pod", "pid": 1, "seq": 8}))  # it beats
    started = now[0]
    await asyncio.wait_for(task, 2)
    assert now[0] - started >= 30  # taken only after 30 s of silence (waiter's own clock)
    assert lock.still_mine()
    await lock.release()


async def test_heartbeat_notices_a_stolen_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = VolumeLock(path, heartbeat=0.02)
    await lock.acquire()
    path.write_text(json.dumps({"id": "thief", "host": "other", "pid": 1, "seq": 0}))
    await asyncio.wait_for(lock.lost.wait(), 2)
    assert not lock.held
    await lock.release()
    assert json.loads(path.read_text())["id"] == "thief"  # release never deletes another's lock


async def test_heartbeat_changes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = VolumeLock(path, heartbeat=0.02)
    await lock.acquire()
    first = path.read_text()
    await asyncio.sleep(0.1)
    assert path.read_text() != first and json.loads(path.read_text())["seq"] >= 2
    await lock.release()


async def test_acquire_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = VolumeLock(path)
    await holder.acquire()
    with pytest.raises(TimeoutError, match="held by"):
        await VolumeLock(path, poll=0.01).acquire(timeout=0.05)
    await holder.release()
