"""A runtime process that installs one preset and exits (driven by test_processes.py).

usage: python install_proc.py WORKSPACE CATALOG_FILE PRESET_ID CONNECTIONS
Prints one JSON line: the task's final state.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from comfyui_docker.downloads.fetch import FetchOptions
from comfyui_docker.downloads.http import RetryPolicy
from comfyui_docker.downloads.installer import LockOptions
from comfyui_docker.downloads.service import PresetService
from comfyui_docker.events import EventBus
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace

KIB = 1024


async def main(root: str, catalog: str, preset: str, connections: int) -> int:
    ws = Workspace(Path(root))
    ws.ensure()
    settings = Settings.from_env({"WORKSPACE_ROOT": root})
    options = FetchOptions(
        connections=connections,
        piece_size=512 * KIB,
        split_after=0.0,  # split at once: several connections, as the test asks
        split_below=float("inf"),
        split_ahead=256 * KIB,
        tap_min=64 * KIB,  # the body tap too
        min_multi_size=1024 * KIB,
        flush_every=256 * KIB,
        retry=RetryPolicy(attempts=5, base=0.05, cap=0.2),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=5),
        space_margin=0,
    )
    svc = PresetService(
        settings,
        ws,
        EventBus(),
        fetch_options=options,
        lock_options=LockOptions(stale_after=3, heartbeat=0.2, poll=0.05),
        space_margin=0,
        shipped_catalog=Path(catalog).read_text(),
    )
    await svc.start()
    try:
        task = await svc.install(preset)
        task = await svc.wait(task.id)
        print(json.dumps(task.to_dict()), flush=True)
        return 0 if task.state == "done" else 1
    finally:
        await svc.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
