"""A child's stdout/stderr → `workspace/logs/<name>.log` (rotated, each line time-stamped), an
in-memory tail, and `LogLine` events on the bus for live following.

ANSI colour codes are stripped (the file is read with `less`/`grep` and shown in the browser;
ComfyUI keeps its colours when redirected, which would otherwise fill the file with escapes).
Lines longer than `MAX_LINE` are cut, never buffered without bound.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from ..events import EventBus, LogLine

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
MAX_LINE = 64 * 1024
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
TAIL = 1000


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def _stamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class RotatingFile:
    """Append lines to `path`; at `max_bytes` rename to .1 … .N (oldest dropped)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh: TextIO | None = None
        self._size = 0

    def _open(self) -> TextIO:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self._size = self._fh.tell()
        return self._fh

    def write(self, line: str) -> None:
        fh = self._open()
        data = line + "\n"
        if self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
            fh = self._open()
        fh.write(data)
        fh.flush()
        self._size += len(data.encode("utf-8", "replace"))

    def rotate(self) -> None:
        self.close()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class LogCapture:
    """One service's log: file, tail, bus. `feed(stream)` pumps a child's output until EOF."""

    def __init__(
        self,
        source: str,
        path: Path | None,
        bus: EventBus | None = None,
        *,
        tail: int = TAIL,
        echo: TextIO | None = None,
        stamp: Callable[[], str] = _stamp,
    ) -> None:
        self.source = source
        self.file = RotatingFile(path) if path is not None else None
        self.bus = bus
        self.lines: deque[str] = deque(maxlen=tail)
        self.echo = echo
        self._stamp = stamp

    def add(self, raw: str) -> None:
        """Record one line of the child's output (or of the supervisor, about the child)."""
        line = strip_ansi(raw.rstrip("\r\n"))
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + " …[cut]"
        self.lines.append(line)
        if self.file is not None:
            self.file.write(f"{self._stamp()} {line}")
        if self.echo is not None:
            try:
                self.echo.write(f"[{self.source}] {line}\n")
                self.echo.flush()
            except (OSError, ValueError):
                self.echo = None
        if self.bus is not None:
            self.bus.publish(LogLine(source=self.source, line=line))

    async def feed(self, stream: asyncio.StreamReader) -> None:
        """Read `stream` line by line until EOF (over-long lines are read in pieces)."""
        pending = b""
        while True:
            try:
                chunk = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial or pending:
                    self.add((pending + exc.partial).decode("utf-8", "replace"))
                return
            except asyncio.LimitOverrunError as exc:
                pending += await stream.readexactly(exc.consumed)
                if len(pending) > MAX_LINE:
                    self.add(pending.decode("utf-8", "replace"))
                    pending = b""
                continue
            self.add((pending + chunk).decode("utf-8", "replace"))
            pending = b""

    def tail(self, n: int = 50) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []

    async def follow(self, bus: EventBus | None = None) -> AsyncIterator[str]:
        """New lines of this source as they arrive (through the bus; ends when cancelled)."""
        target = bus or self.bus
        if target is None:
            raise RuntimeError("follow() needs an event bus")
        with_sub = target.subscribe(["log_line"])
        try:
            async for event in with_sub:
                if isinstance(event, LogLine) and event.source == self.source:
                    yield event.line
        finally:
            with_sub.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def stderr_echo() -> TextIO:
    return sys.stderr
