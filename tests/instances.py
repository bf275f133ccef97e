"""Several ComfyUIs on one volume, as COMFYUI_GPUS runs them: shared models, output, input and user
folders; a port, temp folder and database each (tests/ is on sys.path: `from instances import ...`).
The fake by default; a real one with `root` (see launch.real_comfyui_root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from fakes.comfyui_root.launch import (
    FAKE_ROOT,
    Comfy,
    Layout,
    command,
    free_port,
    python_for,
    stop,
    wait_ready,
)


@contextlib.contextmanager
def run_instances(
    base: Path,
    count: int,
    *,
    root: Path = FAKE_ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[list[Comfy]]:
    """`count` ComfyUIs sharing `base`'s volume, started together; stopped (SIGINT, then SIGKILL)."""
    running: list[Comfy] = []
    try:
        for n in range(count):
            layout = Layout(base)
            layout.temp = base / f"temp-{n}"
            layout.temp.mkdir(parents=True, exist_ok=True)
            port = free_port()
            (base / "user").mkdir(parents=True, exist_ok=True)  # a real ComfyUI refuses a missing one
            own = base / f"db-{n}"
            own.mkdir(parents=True, exist_ok=True)
            mine = [
                "--cpu",
                "--user-directory",
                str(base / "user"),
                "--database-url",
                f"sqlite:///{own}/comfyui.db",
            ]
            python = sys.executable if root == FAKE_ROOT else python_for(root)
            argv = command(python, port, layout, mine)
            log_path = base / f"comfyui-{n}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                )
            running.append(Comfy(proc, port, argv, layout, log_path, root))
        for comfy in running:
            wait_ready(comfy, timeout)
        yield running
    finally:
        for comfy in running:
            stop(comfy.proc)
