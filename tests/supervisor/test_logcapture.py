"""Log capture: time-stamped lines, ANSI stripped, rotation, tail, bus events, long lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

from comfyui_docker.events import EventBus, LogLine
from comfyui_docker.supervisor.logcapture import MAX_LINE, LogCapture, RotatingFile


async def test_feed_stamps_strips_and_publishes(tmp_path: Path) -> None:
    bus = EventBus()
    sub = bus.subscribe(["log_line"])
    cap = LogCapture("comfyui", tmp_path / "comfyui.log", bus, stamp=lambda: "2026-01-01 00:00:00.000")
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x1b[32m[INFO]\x1b[0m Starting server\r\nno newline at the end")
    reader.feed_eof()
    await cap.feed(reader)
    cap.close()
    assert (tmp_path / "comfyui.log").read_text().splitlines() == [
        "2026-01-01 00:00:00.000 [INFO] Starting server",
        "2026-01-01 00:00:00.000 no newline at the end",
    ]
    assert cap.tail(1) == ["no newline at the end"]
    first = sub.queue.get_nowait()
    assert isinstance(first, LogLine) and first.source == "comfyui" and first.line == "[INFO] Starting server"


async def test_over_long_lines_are_cut_not_buffered(tmp_path: Path) -> None:
    cap = LogCapture("x", None)
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(b"a" * (MAX_LINE * 2) + b"\nshort\n")
    reader.feed_eof()
    await cap.feed(reader)
    assert cap.tail(10)[-1] == "short"
    assert all(len(line) <= MAX_LINE + 10 for line in cap.tail(10))


def test_rotation_keeps_n_backups(tmp_path: Path) -> None:
    rf = RotatingFile(tmp_path / "a.log", max_bytes=100, backups=2)
    for i in range(40):
        rf.write(f"line {i:03d} " + "x" * 10)
    rf.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.log", "a.log.1", "a.log.2"]
    assert (tmp_path / "a.log").read_text().splitlines()[-1].startswith("line 039")
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())


async def test_follow_yields_new_lines_of_its_source() -> None:
    bus = EventBus()
    cap = LogCapture("comfyui", None, bus)
    other = LogCapture("nginx", None, bus)
    got: list[str] = []

    async def follow() -> None:
        async for line in cap.follow():
            got.append(line)
            if len(got) == 2:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    cap.add("one")
    other.add("not mine")
    cap.add("two")
    await asyncio.wait_for(task, 2)
    assert got == ["one", "two"]
