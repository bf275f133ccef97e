"""`comfyui-docker start`: the container's entry point. One process, one asyncio loop.

Phases, each timed (`services.timings`) and logged with its duration:

    environment      settings read, logging to stderr and workspace/logs/dashboard.log
    configuration    volume layout + extra_model_paths.yaml (Workspace.init; no recursive scan)
    volume check     free space, the user's own yaml (a broken one is not passed to ComfyUI)
    gpu preflight    NVML + torch's CUDA build (gpu.py); mismatch -> ComfyUI `blocked`, no GPU -> --cpu
    custom nodes     the volume's nodes: their requirements in the package layer (nodes/startup.py),
                     time-bounded; a node whose install failed is left out, the rest goes on later
    comfyui          spawn the supervised child (children/comfyui.py; not_installed when there is no
                     ComfyUI); it boots in its own process while we go on (no added ComfyUI latency)
    preset catalog   the shared aiohttp session and the ComfyUI gateway, PresetService + catalog
    dashboard        uvicorn serving create_app(settings, services) in this loop (web/server.py):
                     answers from here on; then ComfyUI's WebSocket relayed onto the bus (+ torch
                     check), and the node requirements the custom-nodes phase left, in the background
    nginx            the supervised nginx in front (ENABLE_NGINX; children/nginx.py)
    sshd             an SSH server for PUBLIC_KEY only (RunPod), keys only (children/sshd.py)
    downloads        resume unfinished installs, queue PRESET_DOWNLOAD & co.

The phases up to `comfyui` are `boot_comfyui`, which `comfyui-docker serverless` runs too, as it
does `shutdown`. What each supervised program is lives in `children/`; this module only orders
the phases.

ComfyUI is spawned as early as its command line is known: aiohttp, the ComfyUI gateway and the web
app are imported only after the spawn, so their import time overlaps ComfyUI's own boot. The
gateway's WebSocket relay starts right after the dashboard listens (ComfyUI itself needs seconds to
boot, so nothing waits for it). Start-up cost is mostly imports: keep modules that
`start` does not need out of the import graph (see bench/startup.py).

SIGTERM/SIGINT (docker stop) stop everything within 10 s: ComfyUI and nginx get SIGINT then
SIGTERM then SIGKILL, downloads are cancelled (their .part files and journal stay resumable), the
dashboard closes; exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import gpu
from .children import comfyui as comfyui_child
from .errors import AppError
from .instance import Instance
from .logs import configure
from .services import PhaseTiming, Services
from .settings import Settings
from .supervisor import Supervisor, Timings
from .user_yaml import check_user_yaml

if TYPE_CHECKING:  # imported after ComfyUI is spawned: aiohttp costs ~0.2-0.5 s of start-up
    from .downloads.service import PresetService
    from .nodes.startup import StartPlan
    from .web.server import DashboardServer

log = logging.getLogger("comfyui_docker.start")
STOP_BUDGET = 9.0  # docker stop sends SIGKILL after 10 s


class Phases:
    """Times each phase into `services.timings` and logs it."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[PhaseTiming]:
        timing = PhaseTiming(name, 0.0)
        started = time.perf_counter()
        try:
            yield timing
        except Exception as exc:
            timing.ok = False
            timing.detail = timing.detail or str(exc)
            raise
        finally:
            timing.seconds = round(time.perf_counter() - started, 4)
            self.services.timings.append(timing)
            level = logging.INFO if timing.ok else logging.ERROR
            extra = f" ({timing.detail})" if timing.detail else ""
            log.log(level, "phase %-15s %7.1f ms%s", name, timing.seconds * 1000, extra)


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    app_factory: Callable[[Settings, Services], Any] | None = None,
    preflight: Callable[[Settings], Awaitable[gpu.GpuReport]] | None = None,
    echo_children: bool = True,
    services: Services | None = None,
    comfyui_timings: Timings | None = None,
) -> int:
    """Run everything until `stop` is set (by SIGTERM/SIGINT when not given). Returns the exit code."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = services or Services.create(settings)
    settings = services.settings  # the environment with the dashboard's saved settings applied
    phase = Phases(services)
    supervisor = Supervisor()
    services.supervisor = supervisor
    relaying = False
    server: DashboardServer | None = None
    try:
        report_gpu, nodes = await boot_comfyui(
            services,
            supervisor,
            preflight=preflight,
            echo_children=echo_children,
            comfyui_timings=comfyui_timings,
        )
        with phase("preset catalog") as p:
            services.gateway()  # one aiohttp session, shared by the downloads and the gateway
            presets = load_presets(services)
            p.detail = "loaded" if presets is not None else "not available"
        with phase("dashboard") as p:
            from .nodes.startup import start_background
            from .web.server import DashboardServer

            if app_factory is None:
                from .web.app import create_app

                app_factory = create_app
            server = await DashboardServer.serve(app_factory(settings, services), settings)
            p.detail = server.url
            # ComfyUI's events onto the bus, once the dashboard answers (ComfyUI needs seconds)
            relaying = start_events(services, supervisor, report_gpu)
            start_background(services, nodes)
        if settings.enable_nginx:
            with phase("nginx") as p:
                from .children import nginx

                with _reported(p, "nginx"):
                    nginx.service(services, supervisor).start()
                    p.detail = "started"
        if settings.public_key:
            with phase("sshd") as p:
                from .children import sshd

                with _reported(p, "sshd"):  # the first start generates host keys (seconds): off the loop
                    child = await asyncio.to_thread(sshd.service, services, supervisor)
                    if child is not None:
                        child.start()
                    p.detail = "started" if child else "off"
        with phase("downloads") as p:
            if presets is not None:
                await presets.start()
                queued = await presets.queue_startup(settings.startup_presets)
                p.detail = f"{len(queued)} preset(s) queued"
            else:
                p.detail = "no download service"
        total = sum(t.seconds for t in services.timings)
        log.info("start-up done in %.0f ms; waiting for SIGTERM", total * 1000)
        await stop.wait()
    except AppError as exc:
        log.error("start failed: %s", exc)
        return 1
    finally:
        log.info("stopping")
        await shutdown(services, supervisor, relaying=relaying, server=server)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


@contextlib.contextmanager
def _reported(phase: PhaseTiming, name: str) -> Iterator[None]:
    """A child that cannot start (its config refused, its binary missing) fails its phase, not `start`."""
    try:
        yield
    except AppError as exc:
        log.error("%s: %s", name, exc)
        phase.ok, phase.detail = False, str(exc)


async def boot_comfyui(
    services: Services,
    supervisor: Supervisor,
    *,
    preflight: Callable[[Settings], Awaitable[gpu.GpuReport]] | None = None,
    echo_children: bool = True,
    comfyui_timings: Timings | None = None,
    log_file: str = "dashboard.log",
    several: bool = True,
) -> tuple[gpu.GpuReport, StartPlan]:
    """The phases every mode shares (`start` and `serverless`), up to ComfyUI spawned:
    environment, configuration, volume check, gpu preflight, custom nodes, comfyui. Logs go to
    `log_file`. With `several` (start), COMFYUI_GPUS may run one ComfyUI per GPU; without it
    (serverless) one runs. Returns the GPU verdict and what the custom-nodes phase left for the background
    (`nodes.startup.start_background`, once the gateway exists)."""
    from .nodes.startup import run_phase

    settings = services.settings
    phase = Phases(services)
    with phase("environment") as p:
        configure(settings.log_level, None, file_name=log_file)
        p.detail = f"Python {sys.version.split()[0]}, workspace {settings.workspace_root}"
    with phase("configuration") as p:
        report = services.workspace.init()
        configure(settings.log_level, services.workspace.logs, file_name=log_file)
        p.detail = (
            f"{len(report.created)} folder(s) created, {services.workspace.generated_yaml.name} written"
        )
    with phase("volume check") as p:
        for problem in report.problems:
            log.warning("volume: %s", problem)
        usable, problems = check_user_yaml(services.workspace.user_yaml)
        for prob in problems:
            log.warning("%s%s", services.workspace.user_yaml.name, prob)
        free = report.disk.free if report.disk else 0
        p.detail = f"{free / 1024**3:.1f} GiB free" + (
            "" if usable or not problems else ", user yaml unusable"
        )
    with phase("gpu preflight") as p:
        check = preflight or gpu.preflight_for
        report_gpu = await check(settings)
        services.gpu = report_gpu
        p.detail = f"{report_gpu.verdict}: {report_gpu.message}"
        if report_gpu.verdict in ("no_gpu", "warning", "error"):
            log.warning("GPU: %s (%s)", report_gpu.message, report_gpu.hint)
    with phase("custom nodes") as p:
        nodes = await run_phase(services)
        p.detail = nodes.detail
    with phase("comfyui") as p:
        instances = _instances(settings, report_gpu, several=several)
        services.instances = instances
        started = []
        for instance in instances:  # each supervised on its own: one failing leaves the others
            child = comfyui_child.service(
                services,
                supervisor,
                report_gpu,
                instance=instance,
                nodes=nodes,
                echo=echo_children,
                timings=comfyui_timings,
            )
            child.start()
            started.append(child)
        # let them spawn now, before the dashboard's imports hold the loop for a second or two
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.spawned.wait() for c in started)), 10)
        if len(started) == 1:
            p.detail = started[0].status().state.value
        else:
            p.detail = ", ".join(f"{c.spec.name} {c.status().state.value}" for c in started)
    return report_gpu, nodes


def _instances(settings: Settings, report: gpu.GpuReport, *, several: bool) -> list[Instance]:
    """The ComfyUIs to run (placement.py): one per GPU with COMFYUI_GPUS when `several`, else one."""
    from .placement import plan

    if not several:
        if settings.comfyui_gpus.per_gpu:
            log.warning(
                "COMFYUI_GPUS=%s is not used here: one ComfyUI runs, on every GPU", settings.comfyui_gpus
            )
        return [Instance.first(settings)]
    placed = plan(settings, report)
    for warning in placed.warnings:
        log.warning("%s", warning)
    for instance in placed.instances:
        if instance.problem:
            log.warning("%s is held blocked: %s", instance.name, instance.problem)
    return placed.instances


def load_presets(services: Services) -> PresetService | None:
    """The PresetService with its catalog read, as `services.presets`; None when the catalog cannot
    be read (logged: the dashboard says the preset service is not running)."""
    from .downloads.service import PresetService

    presets = PresetService(services.settings, services.workspace, services.bus, services.http_client())
    try:
        presets.load_catalog()
    except AppError as exc:
        log.error("preset catalog: %s", exc)
        return None
    services.presets = presets
    return presets


def start_events(services: Services, supervisor: Supervisor, report: gpu.GpuReport) -> bool:
    """ComfyUI's WebSocket relayed onto the bus, and the background torch check.

    Run once the dashboard listens: ComfyUI takes seconds to boot anyway, and the relay wakes up
    when the supervisor says it runs.
    """
    gateway = services.gateway()
    if not services.settings.comfyui_installed:
        return False
    gateway.start_events(services.bus)
    if report.devices and report.torch_check != "import" and not report.declared:
        task = asyncio.create_task(_deep_check(services, supervisor), name="gpu-deep-check")
        supervisor.background.add(task)
        task.add_done_callback(supervisor.background.discard)
    return True


async def _deep_check(services: Services, supervisor: Supervisor) -> None:
    report = await gpu.deep_preflight(services.settings.comfyui_python)
    services.gpu = report
    if report.verdict != "ok":
        log.warning("GPU (torch import): %s (%s)", report.message, report.hint)
    per_gpu = [i for i in services.instances if i.gpu is not None]
    if per_gpu and report.verdict == "ok":
        await _per_gpu_check(services, supervisor, per_gpu)


async def _per_gpu_check(services: Services, supervisor: Supervisor, instances: list[Instance]) -> None:
    """torch on each GPU as its ComfyUI sees it; an instance whose GPU fails is held `blocked`."""
    from .placement import deep_checks

    checks = await deep_checks(services.settings.comfyui_python, instances)
    if services.gpu is not None:
        services.gpu.per_gpu = checks
    for instance in instances:
        check = checks.get(str(instance.gpu))
        if check is None or check.get("available"):
            continue
        why = check.get("error") or "torch.cuda.is_available() is False on it"
        detail = f"GPU {instance.gpu} fails CUDA's check ({why}); remove it from COMFYUI_GPUS"
        log.error("%s: %s", instance.name, detail)
        await supervisor.get(instance.name).block(detail)


async def shutdown(
    services: Services,
    supervisor: Supervisor,
    *,
    relaying: bool = False,
    server: DashboardServer | None = None,
) -> None:
    """Stop the children, the relay, the downloads, node installs and the dashboard at once, within
    STOP_BUDGET; whatever is left then is killed."""

    async def everything() -> None:
        jobs: list[Awaitable[Any]] = [supervisor.stop()]
        if relaying and services.comfyui is not None:
            jobs.append(services.comfyui.stop_events())
        if services.presets is not None:
            jobs.append(services.presets.close())
        if services.node_tasks is not None:
            jobs.append(services.node_tasks.close())
        if server is not None:
            jobs.append(server.stop())
        await asyncio.gather(*jobs, return_exceptions=True)
        background = list(supervisor.background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)  # their children ended too
        if services.http is not None:
            await services.http.close()

    try:
        await asyncio.wait_for(everything(), STOP_BUDGET)
    except TimeoutError:
        log.error("shutdown took longer than %.0f s; killing what is left", STOP_BUDGET)
        supervisor.kill_all()


def main(settings: Settings) -> int:
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0
