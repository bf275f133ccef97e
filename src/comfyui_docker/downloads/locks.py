"""Per-file locks on a shared volume: lock files with an owner and a heartbeat, not `flock`.

Network file systems do not honour `flock` reliably, so a lock is a file created with
`O_CREAT | O_EXCL` holding its owner (host, pid, process start time, a random id) and a
heartbeat counter the owner rewrites every few seconds.

A waiter takes the lock over when it is stale:
- on the same host, at once when the owner process is gone (a SIGKILLed runtime on restart);
- otherwise when the heartbeat has not changed for `stale_after` seconds of the waiter's own
  clock (no trust in clocks across pods).
Take-over renames the stale file to a unique name first (only one waiter can win the rename),
checks it renamed what it judged stale, and puts it back with `link` (which never overwrites)
if not. The owner checks at every heartbeat that the file is still its own; if it is not, it
loses the lock and its download stops (the `.part` stays for whoever holds it now).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil


class LockLost(Exception):
    """Another process took the lock over (this one looked dead to it)."""


def process_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


class VolumeLock:
    def __init__(
        self,
        path: Path,
        *,
        stale_after: float = 30.0,
        heartbeat: float = 5.0,
        poll: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        host: str | None = None,
    ) -> None:
        self.path = path
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.host = host or socket.gethostname()
        self.id = uuid.uuid4().hex
        self.seq = 0
        self.held = False
        self.lost = asyncio.Event()
        self.waited = False
        self._beat: asyncio.Task[None] | None = None

    # ---- content ----------------------------------------------------------------------
    def _content(self) -> bytes:
        pid = os.getpid()
        data = {
            "id": self.id,
            "host": self.host,
            "pid": pid,
            "started": process_started(pid),
            "seq": self.seq,
            "time": time.time(),
        }
        return json.dumps(data).encode()

    def _read(self, path: Path | None = None) -> dict[str, Any] | None:
        try:
            raw = (path or self.path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return {"raw": raw.decode("latin-1")}  # being rewritten: counts as a change
        return value if isinstance(value, dict) else {"raw": str(value)}

    def owner(self) -> dict[str, Any] | None:
        return self._read()

    def _owner_gone(self, info: dict[str, Any]) -> bool:
        if info.get("host") != self.host or not isinstance(info.get("pid"), int):
            return False
        started = process_started(info["pid"])
        if started is None:
            return True
        recorded = info.get("started")
        return isinstance(recorded, int | float) and abs(started - recorded) > 1.0

    # ---- acquire / release --------------------------------------------------------------
    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _take_over(self, judged: dict[str, Any]) -> None:
        aside = self.path.with_name(f"{self.path.name}.stale-{self.id}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else was faster
        if self._read(aside) == judged:
            aside.unlink(missing_ok=True)
            return
        # we moved a fresh lock of another waiter: put it back (link never overwrites)
        with contextlib.suppress(FileExistsError):
            os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    async def acquire(self, timeout: float | None = None) -> None:
        start = self.clock()
        last: dict[str, Any] | None = None
        since = self.clock()
        while True:
            if self._try_create():
                self.held = True
                self._beat = asyncio.create_task(self._heartbeat(), name=f"lock-heartbeat-{self.path.name}")
                return
            self.waited = True
            info = self._read()
            if info is None:
                continue  # released between our create and read
            if info != last:
                last, since = info, self.clock()
            if self._owner_gone(info) or self.clock() - since >= self.stale_after:
                self._take_over(info)
                continue
            if timeout is not None and self.clock() - start > timeout:
                raise TimeoutError(f"{self.path} is held by {info.get('host')}:{info.get('pid')}")
            await self.sleep(self.poll)

    async def _heartbeat(self) -> None:
        while self.held:
            await self.sleep(self.heartbeat)
            if not self.held:
                return
            info = self._read()
            if info is None or info.get("id") != self.id:
                self.held = False
                self.lost.set()
                return
            self.seq += 1
            try:
                fd = os.open(self.path, os.O_WRONLY)
            except FileNotFoundError:
                self.held = False
                self.lost.set()
                return
            try:
                content = self._content()
                os.write(fd, content)
                os.ftruncate(fd, len(content))
            finally:
                os.close(fd)

    def still_mine(self) -> bool:
        info = self._read()
        return self.held and info is not None and info.get("id") == self.id

    async def release(self) -> None:
        was_held = self.held
        self.held = False
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if was_held:
            info = self._read()
            if info is not None and info.get("id") == self.id:
                self.path.unlink(missing_ok=True)

    async def __aenter__(self) -> VolumeLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
