"""ComfyUI's process spec: its command line, environment and readiness probe.

    python main.py --listen 127.0.0.1 --port COMFYUI_INTERNAL_PORT
        --output-directory WS/output --input-directory WS/uploads
        --user-directory WS/user
        --extra-model-paths-config WS/config/extra_model_paths.yaml
        [--extra-model-paths-config WS/config/extra_model_paths.user.yaml]   (when usable)
        [--disable-all-custom-nodes --whitelist-custom-nodes NAME...]  (a volume node left out)
        [--cpu]                                                               (no GPU, see gpu.py)
        COMFYUI_EXTRA_ARGS...

`--user-directory` goes on the volume: ComfyUI's settings and the workflows saved in its own UI
live there and must survive a pod restart. The SQLite database (`--database-url`) and the temp
folder stay at their defaults inside the container (COMFYUI_ROOT/user/comfyui.db, COMFYUI_ROOT/temp):
SQLite is unsafe on network volumes shared by several pods, and temp is wiped at every start anyway.

`env` adds to the runtime's environment: the volume's package layer (nodes/layer.py:
COMFYUI_DOCKER_PYTHON_LAYER, PIP_PREFIX, PIP_CONSTRAINT, UV_CONSTRAINT, its bin/ last on PATH).
`node_args` are the custom-node flags of nodes/service.py (`whitelist_args`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..model_paths import check_user_yaml
from ..settings import Settings
from ..workspace import Workspace
from .spec import ProcessSpec, Timings

if TYPE_CHECKING:  # aiohttp is imported only after ComfyUI is spawned (start-up latency)
    from ..comfyui.client import ComfyUIClient

log = logging.getLogger(__name__)

COMFYUI_TIMINGS = Timings(
    start_grace=30.0,
    ready_timeout=180.0,  # 12-18 s on 2 CPU cores; first start on a cold network volume can be far slower
    poll_interval=0.25,
    retries=5,
    backoff_base=1.0,
    backoff_cap=30.0,
    stop_sigint=6.0,  # docker stop waits 10 s in total before SIGKILL
    stop_sigterm=2.5,
)


def user_directory(workspace: Workspace) -> Path:
    return workspace.root / "user"


def comfyui_args(
    settings: Settings,
    workspace: Workspace,
    *,
    cpu: bool = False,
    warnings: list[str] | None = None,
    node_args: Sequence[str] = (),
) -> list[str]:
    """ComfyUI's arguments after `main.py` (see the module docstring)."""
    args = ["--listen", "127.0.0.1", "--port", str(settings.comfyui_internal_port)]
    args += ["--output-directory", str(workspace.output), "--input-directory", str(workspace.uploads)]
    args += ["--user-directory", str(user_directory(workspace))]
    args += ["--extra-model-paths-config", str(workspace.generated_yaml)]
    usable, problems = check_user_yaml(workspace.user_yaml)
    if usable:
        args += ["--extra-model-paths-config", str(workspace.user_yaml)]
    elif workspace.user_yaml.is_file():
        why = "; ".join(str(p) for p in problems if p.fatal) or "unreadable"
        msg = f"{workspace.user_yaml} is not passed to ComfyUI: it would crash it ({why})"
        log.warning(msg)
        if warnings is not None:
            warnings.append(msg)
    args += list(node_args)
    if cpu:
        args.append("--cpu")
    args += list(settings.comfyui_extra_args)
    return args


def comfyui_spec(
    settings: Settings,
    workspace: Workspace,
    client: ComfyUIClient | Callable[[], ComfyUIClient | None],
    *,
    cpu: bool = False,
    timings: Timings = COMFYUI_TIMINGS,
    warnings: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    node_args: Sequence[str] = (),
) -> ProcessSpec:
    """The supervised ComfyUI: its own Python, run from COMFYUI_ROOT, ready when /system_stats is ours.

    `client` may be a getter: the runtime creates its HTTP client after the spawn.
    """
    if settings.comfyui_root is None:
        raise ValueError("ComfyUI is not installed (COMFYUI_ROOT unset)")
    user_directory(workspace).mkdir(parents=True, exist_ok=True)
    argv = [
        str(settings.comfyui_python),
        "main.py",
        *comfyui_args(settings, workspace, cpu=cpu, warnings=warnings, node_args=node_args),
    ]
    output = workspace.output

    async def probe() -> bool:
        current = client() if callable(client) else client
        return current is not None and await current.is_ours(output)

    return ProcessSpec(
        name="comfyui",
        argv=argv,
        cwd=settings.comfyui_root,
        env={**os.environ, **env} if env else None,
        identity="main.py",
        probe=probe,
        timings=timings,
        log_name="comfyui.log",
    )


def not_installed_detail(settings: Settings) -> str:
    if settings.comfyui_root is None:
        return (
            "no ComfyUI found: set COMFYUI_ROOT to a ComfyUI checkout (the folder with main.py) "
            "and COMFYUI_PYTHON to its Python (the image has both)"
        )
    return f"no main.py in COMFYUI_ROOT={settings.comfyui_root}: point it at a ComfyUI checkout"
