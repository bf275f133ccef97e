"""Commands with their output in the check's log file, and a clear error when one fails."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO


class CommandFailed(Exception):
    pass


class Log:
    """The check's log: every command and its output; `say` also prints to the terminal."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file: IO[str] = path.open("a", encoding="utf-8")
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        line = f"[{time.monotonic() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        self.write(line + "\n")

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def run(
    argv: list[str], log: Log, *, capture: bool = False, cwd: Path | None = None, echo: bool = False
) -> str:
    """Run `argv`; its output goes to the log (and to the terminal with `echo`). Raises on failure."""
    log.write(f"$ {' '.join(argv)}\n")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if not capture else subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        if not capture:
            log.write(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    err = proc.stderr.read() if proc.stderr else ""
    if err:
        log.write(err)
    code = proc.wait()
    if code != 0:
        tail = "".join(out[-30:]) + err
        raise CommandFailed(
            f"{argv[0]} {argv[1] if len(argv) > 1 else ''} exited {code}:\n{tail}\n(log: {log.path})"
        )
    return "".join(out)
