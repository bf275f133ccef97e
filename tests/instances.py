"""Several fake ComfyUIs on one volume, as COMFYUI_GPUS runs them: shared models, output and input
folders, a temp folder and a port each (tests/ is on sys.path: `from instances import ...`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from fakes.comfyui_root.launch import FAKE_ROOT, Comfy, Layout, command, free_port, stop, wait_ready


@contextlib.contextmanager
def run_instances(
    base: Path, count: int, *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Iterator[list[Comfy]]:
    """`count` fake ComfyUIs sharing `base`'s volume; stopped (SIGINT, then SIGKILL) at the end."""
    running: list[Comfy] = []
    try:
        for n in range(count):
            layout = Layout(base)
            layout.temp = base / f"temp-{n}"
            layout.temp.mkdir(parents=True, exist_ok=True)
            port = free_port()
            argv = command(sys.executable, port, layout)
            log_path = base / f"comfyui-{n}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=FAKE_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                )
            running.append(Comfy(proc, port, argv, layout, log_path, FAKE_ROOT))
        for comfy in running:
            wait_ready(comfy, timeout)
        yield running
    finally:
        for comfy in running:
            stop(comfy.proc)
