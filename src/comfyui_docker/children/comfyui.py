"""ComfyUI as a supervised child: one `Instance`, its command line, its spec and its `Service`.

    python main.py --listen 127.0.0.1 --port PORT
        --output-directory WS/output --input-directory WS/uploads
        --user-directory WS/user
        --extra-model-paths-config WS/config/extra_model_paths.yaml
        [--extra-model-paths-config WS/config/extra_model_paths.user.yaml]   (when usable)
        --database-url sqlite:///TMP/comfyui-docker/comfyui-PORT/comfyui.db
        [--temp-directory DIR]                     (an instance with a temp folder of its own)
        [--enable-manager]                          (its pip package is in ComfyUI's venv)
        [--disable-all-custom-nodes --whitelist-custom-nodes NAME...]  (a volume node left out)
        [--cpu]                                                               (no GPU, see gpu.py)
        COMFYUI_EXTRA_ARGS...

`--user-directory` goes on the volume: ComfyUI's settings and the workflows saved in its own UI
live there and must survive a pod restart. The SQLite database stays on the container's own disk:
SQLite is unsafe on network volumes shared by several pods. ComfyUI's default for it
(COMFYUI_ROOT/user/comfyui.db) does not follow `--user-directory` and its folder does not exist
in the image, so ComfyUI logged "Failed to initialize database" at every start; the temp folder
stays at its default (wiped at every start anyway) unless the instance names one.

An `Instance` (instance.py) is what sets one ComfyUI apart from another on the same machine: its
port, GPU, database, temp folder, log and service name. `start` runs the instances placement.py plans from
COMFYUI_GPUS: one (`Instance.first`: the settings' COMFYUI_INTERNAL_PORT, every GPU, `comfyui.log`,
service `comfyui`), or one per GPU (`Instance.on_gpu`: `comfyui-n`, each supervised on its own);
the volume (models, output, uploads, user folder, custom nodes) is shared by all.

Its environment is comfyui_env.py's. `extend_env` adds to it: the volume's package layer
(nodes/layer.py: COMFYUI_DOCKER_PYTHON_LAYER, PIP_PREFIX, PIP_CONSTRAINT, UV_CONSTRAINT, its bin/
last on PATH). `node_args` are the custom-node flags of nodes/service.py (`whitelist_args`).

`service(...)` adds the supervised ComfyUI to the supervisor: held `not_installed` without a
ComfyUI, `blocked` when the GPU preflight found a CUDA mismatch or the instance's GPU cannot run
it (`Instance.problem`; a restart forces it), otherwise
started with a spec rebuilt at every (re)start, as the volume's nodes may have changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import gpu
from ..instance import Instance
from ..services import Services
from ..settings import Settings
from ..supervisor import ProcessSpec, Service, State, Supervisor, Timings
from ..supervisor.logcapture import stderr_echo
from ..user_yaml import check_user_yaml
from ..workspace import Workspace
from .comfyui_env import comfyui_env, comfyui_environment, manager_installed

if TYPE_CHECKING:  # aiohttp is imported only after ComfyUI is spawned (start-up latency)
    from ..comfyui.client import ComfyUIClient
    from ..nodes.startup import StartPlan

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
    instance: Instance | None = None,
    cpu: bool = False,
    warnings: list[str] | None = None,
    node_args: Sequence[str] = (),
) -> list[str]:
    """ComfyUI's arguments after `main.py` (see the module docstring)."""
    me = instance or Instance.first(settings)
    args = ["--listen", "127.0.0.1", "--port", str(me.port)]
    args += ["--output-directory", str(workspace.output), "--input-directory", str(workspace.uploads)]
    args += ["--user-directory", str(user_directory(workspace))]
    args += ["--extra-model-paths-config", str(workspace.generated_yaml)]
    args += ["--database-url", f"sqlite:///{me.database}"]
    if me.temp_directory is not None:
        args += ["--temp-directory", str(me.temp_directory)]
    if manager_installed(settings):
        args.append("--enable-manager")
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
    instance: Instance | None = None,
    cpu: bool = False,
    timings: Timings = COMFYUI_TIMINGS,
    warnings: list[str] | None = None,
    extend_env: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
    node_args: Sequence[str] = (),
) -> ProcessSpec:
    """The supervised ComfyUI: its own Python, run from COMFYUI_ROOT, ready when /system_stats is ours.

    `client` may be a getter: the runtime creates its HTTP client after the spawn.
    """
    if settings.comfyui_root is None:
        raise ValueError("ComfyUI is not installed (COMFYUI_ROOT unset)")
    me = instance or Instance.first(settings)
    user_directory(workspace).mkdir(parents=True, exist_ok=True)
    me.database.parent.mkdir(parents=True, exist_ok=True)
    if me.temp_directory is not None:
        me.temp_directory.mkdir(parents=True, exist_ok=True)
    args = comfyui_args(settings, workspace, instance=me, cpu=cpu, warnings=warnings, node_args=node_args)
    output = workspace.output
    env = comfyui_environment(settings, comfyui_env(settings))
    env.update(me.env)

    async def probe() -> bool:
        current = client() if callable(client) else client
        return current is not None and await current.is_ours(output)

    return ProcessSpec(
        name=me.name,
        argv=[str(settings.comfyui_python), "main.py", *args],
        cwd=settings.comfyui_root,
        env=extend_env(env) if extend_env is not None else env,
        identity="main.py",
        probe=probe,
        timings=timings,
        log_name=me.log_name,
    )


def not_installed_detail(settings: Settings) -> str:
    if settings.comfyui_root is None:
        return (
            "no ComfyUI found: set COMFYUI_ROOT to a ComfyUI checkout (the folder with main.py) "
            "and COMFYUI_PYTHON to its Python (the image has both)"
        )
    return f"no main.py in COMFYUI_ROOT={settings.comfyui_root}: point it at a ComfyUI checkout"


def service(
    services: Services,
    supervisor: Supervisor,
    report: gpu.GpuReport,
    *,
    instance: Instance | None = None,
    nodes: StartPlan | None = None,
    echo: bool = True,
    timings: Timings | None = None,
) -> Service:
    """The supervised ComfyUI `instance`, added to `supervisor` (not started: `start()` it)."""
    settings = services.settings
    me = instance or Instance.first(settings)

    async def precheck() -> tuple[State, str] | None:  # before every start; a restart re-checks
        if not settings.comfyui_installed:
            return State.NOT_INSTALLED, not_installed_detail(settings)
        if report.blocks_start:
            return State.BLOCKED, f"{report.message}. {report.hint}"
        if me.problem:
            return State.BLOCKED, me.problem
        return None

    if not settings.comfyui_installed:  # held at every start, restarts included

        async def still_missing() -> tuple[State, str]:
            return State.NOT_INSTALLED, not_installed_detail(settings)

        placeholder = ProcessSpec(name=me.name, argv=["main.py"], log_name=me.log_name)
        return supervisor.add(
            Service(placeholder, bus=services.bus, log_dir=services.workspace.logs, precheck=still_missing)
        )
    cpu = report.wants_cpu and gpu.wants_cpu_flag(settings.comfyui_extra_args)
    layer = nodes.layer if nodes is not None else None

    def client() -> ComfyUIClient | None:
        clients = services.comfyui.clients if services.comfyui is not None else ()
        return clients[me.index] if me.index < len(clients) else None

    def make_spec() -> ProcessSpec:  # at every (re)start: the volume's nodes may have changed
        on_volume = services.nodes
        node_args = on_volume.whitelist_args(on_volume.left_out(layer)) if layer and on_volume else []
        return comfyui_spec(
            settings,
            services.workspace,
            client,
            instance=me,
            cpu=cpu,
            timings=timings or COMFYUI_TIMINGS,
            extend_env=layer.environment if layer is not None else None,
            node_args=node_args,
        )

    return supervisor.add(
        Service(
            make_spec(),
            bus=services.bus,
            log_dir=services.workspace.logs,
            precheck=precheck,
            echo=stderr_echo() if echo else None,
            refresh=make_spec,
        )
    )
