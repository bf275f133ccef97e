"""`comfyui-docker start`: the container's entry point. One process, one asyncio loop.

Phases, each timed (`services.timings`) and logged with its duration:

    environment      settings read, logging to stderr and workspace/logs/dashboard.log
    configuration    volume layout + extra_model_paths.yaml (Workspace.init; no recursive scan)
    volume check     free space, the user's own yaml (a broken one is not passed to ComfyUI)
    gpu preflight    NVML + torch's CUDA build (gpu.py); mismatch -> ComfyUI `blocked`, no GPU -> --cpu
    custom nodes     the volume's nodes: their requirements in the package layer (nodes/startup.py),
                     time-bounded; a node whose install failed is left out, the rest goes on later
    comfyui          spawn the supervised child (not_installed when there is no ComfyUI); it boots in
                     its own process while we go on (no added ComfyUI latency)
    preset catalog   the shared aiohttp session and the ComfyUI gateway, PresetService + catalog
    dashboard        uvicorn serving create_app(settings, services) in this loop: answers from here on;
                     then ComfyUI's WebSocket relayed onto the bus (+ torch check),
                     and the node requirements the custom-nodes phase left, in the background
    nginx            the supervised nginx in front (ENABLE_NGINX)
    sshd             an SSH server for PUBLIC_KEY only (RunPod), keys only
    downloads        resume unfinished installs, queue PRESET_DOWNLOAD & co.

The phases up to `comfyui` are `boot_comfyui`, which `comfyui-docker serverless` runs too.

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
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import gpu
from .errors import AppError
from .logs import configure
from .model_paths import check_user_yaml
from .services import PhaseTiming, Services
from .settings import Settings
from .supervisor import ProcessSpec, Service, State, Supervisor, Timings
from .supervisor.comfyui import COMFYUI_TIMINGS, comfyui_spec, not_installed_detail
from .supervisor.logcapture import stderr_echo

if TYPE_CHECKING:  # imported after ComfyUI is spawned: aiohttp costs ~0.2-0.5 s of start-up
    import aiohttp

    from .comfyui import ComfyUIGateway
    from .downloads.service import PresetService
    from .nodes.startup import StartPlan

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


class _Server:
    """uvicorn in our loop, without its own signal handling (we own SIGTERM/SIGINT)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws_ping_interval=20,
            # The client address is the socket peer (or, behind our nginx, its X-Real-IP: see
            # web/auth/policy.py). uvicorn would otherwise take X-Forwarded-For from any local
            # peer, and rotating it would dodge the login backoff.
            proxy_headers=False,
        )
        self.server = Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="dashboard")
        while not self.server.started:
            if self.task.done():
                exc = self.task.exception() if not self.task.cancelled() else None
                raise AppError(f"the dashboard could not start: {exc or 'uvicorn stopped'}")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, SystemExit, asyncio.CancelledError):
                await self.task


def dashboard_address(settings: Settings) -> tuple[str, int]:
    if settings.enable_nginx:
        return "127.0.0.1", settings.dashboard_internal_port
    return settings.dashboard_host, settings.dashboard_port


async def _tcp_probe(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def nginx_service(services: Services, supervisor: Supervisor) -> Service:
    """nginx under the same supervision (its config and argv come from comfyui_docker.nginx)."""
    from . import nginx

    settings = services.settings
    conf = nginx.write_config(settings, services.workspace)
    nginx.check(conf)
    port = settings.dashboard_port

    async def probe() -> bool:
        return await _tcp_probe("127.0.0.1", port)

    spec = ProcessSpec(
        name="nginx",
        argv=nginx.argv(conf),
        identity="nginx",
        probe=probe,
        timings=Timings(start_grace=10, ready_timeout=15, retries=5, stop_sigint=2.0, stop_sigterm=2.0),
    )
    return supervisor.add(Service(spec, bus=services.bus, log_dir=services.workspace.logs))


def sshd_service(services: Services, supervisor: Supervisor) -> Service | None:
    """An SSH server with the PUBLIC_KEY only (RunPod injects it); None without a key."""
    from . import sshd

    plan = sshd.prepare(services.settings, services.workspace)
    if plan is None:
        return None
    sshd.check(plan)

    async def probe() -> bool:
        return await _tcp_probe("127.0.0.1", plan.port)

    spec = ProcessSpec(
        name="sshd",
        argv=plan.argv,
        identity="sshd",
        probe=probe,
        timings=Timings(start_grace=5, ready_timeout=10, retries=5, stop_sigint=1.0, stop_sigterm=2.0),
    )
    return supervisor.add(Service(spec, bus=services.bus, log_dir=services.workspace.logs))


def _make_presets(services: Services) -> PresetService:
    from .downloads.service import PresetService

    presets = PresetService(services.settings, services.workspace, services.bus, services.http)
    presets.load_catalog()
    return presets


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
    server: _Server | None = None
    presets: PresetService | None = None
    try:
        report_gpu, nodes = await boot_comfyui(
            services,
            supervisor,
            preflight=preflight,
            echo_children=echo_children,
            comfyui_timings=comfyui_timings,
        )
        with phase("preset catalog") as p:
            _gateway(services)  # one aiohttp session, shared by the downloads and the gateway
            try:
                services.presets = presets = _make_presets(services)
            except AppError as exc:
                log.error("preset catalog: %s", exc)
            p.detail = "loaded" if presets is not None else "not available"
        with phase("dashboard") as p:
            if app_factory is None:
                from .web.app import create_app

                app_factory = create_app
            host, port = dashboard_address(settings)
            if not port_free(host, port):
                raise AppError(
                    f"port {port} on {host} is already in use: the dashboard cannot listen",
                    hint="stop the other program or set DASHBOARD_PORT",
                )
            server = _Server(app_factory(settings, services), host, port)
            await server.start()
            p.detail = f"http://{host}:{port}"
            # ComfyUI's events onto the bus, once the dashboard answers (ComfyUI needs seconds)
            relaying = _start_events(services, supervisor, settings, report_gpu)
            from .nodes.startup import start_background

            start_background(services, nodes)
        if settings.enable_nginx:
            with phase("nginx") as p:
                try:
                    nginx_service(services, supervisor).start()
                    p.detail = "started"
                except AppError as exc:
                    log.error("nginx: %s", exc)
                    p.ok, p.detail = False, str(exc)
        if settings.public_key:
            with phase("sshd") as p:
                try:  # the first start generates host keys (seconds): off the loop
                    sshd = await asyncio.to_thread(sshd_service, services, supervisor)
                    if sshd is not None:
                        sshd.start()
                    p.detail = "started" if sshd else "off"
                except AppError as exc:
                    log.error("sshd: %s", exc)
                    p.ok, p.detail = False, str(exc)
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
        await _shutdown(services, supervisor, relaying, server)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


async def boot_comfyui(
    services: Services,
    supervisor: Supervisor,
    *,
    preflight: Callable[[Settings], Awaitable[gpu.GpuReport]] | None = None,
    echo_children: bool = True,
    comfyui_timings: Timings | None = None,
    log_file: str = "dashboard.log",
) -> tuple[gpu.GpuReport, StartPlan]:
    """The phases every mode shares (`start` and `serverless`), up to ComfyUI spawned:
    environment, configuration, volume check, gpu preflight, custom nodes, comfyui. Logs go to
    `log_file`. Returns the GPU verdict and what the custom-nodes phase left for the background
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
        check = preflight or (lambda s: gpu.preflight(s.comfyui_python, nvml=gpu.missing_nvml()))
        report_gpu = await check(settings)
        services.gpu = report_gpu
        p.detail = f"{report_gpu.verdict}: {report_gpu.message}"
        if report_gpu.verdict in ("no_gpu", "warning", "error"):
            log.warning("GPU: %s (%s)", report_gpu.message, report_gpu.hint)
    with phase("custom nodes") as p:
        nodes = await run_phase(services)
        p.detail = nodes.detail
    with phase("comfyui") as p:
        await _start_comfyui(services, supervisor, report_gpu, echo_children, comfyui_timings, nodes)
        p.detail = supervisor.status("comfyui").state.value
    return report_gpu, nodes


async def _start_comfyui(
    services: Services,
    supervisor: Supervisor,
    report: gpu.GpuReport,
    echo: bool,
    timings: Timings | None = None,
    nodes: StartPlan | None = None,
) -> None:
    settings = services.settings
    if not settings.comfyui_installed:
        placeholder = ProcessSpec(name="comfyui", argv=["main.py"], log_name="comfyui.log")

        async def still_missing() -> tuple[State, str]:  # a restart re-checks and holds again
            return State.NOT_INSTALLED, not_installed_detail(settings)

        service = Service(
            placeholder, bus=services.bus, log_dir=services.workspace.logs, precheck=still_missing
        )
        supervisor.add(service)
        service.hold(State.NOT_INSTALLED, not_installed_detail(settings))
        return
    cpu = report.wants_cpu and gpu.wants_cpu_flag(settings.comfyui_extra_args)
    layer = nodes.layer if nodes is not None else None

    def make_spec() -> ProcessSpec:  # at every (re)start: the volume's nodes may have changed
        nodes = services.nodes
        node_args = nodes.whitelist_args(nodes.left_out(layer)) if layer and nodes else []
        return comfyui_spec(
            settings,
            services.workspace,
            lambda: services.comfyui.clients[0] if services.comfyui is not None else None,
            cpu=cpu,
            timings=timings or COMFYUI_TIMINGS,
            extend_env=layer.environment if layer is not None else None,
            node_args=node_args,
        )

    spec = make_spec()

    async def precheck() -> tuple[State, str] | None:
        if not settings.comfyui_installed:
            return State.NOT_INSTALLED, not_installed_detail(settings)
        if report.blocks_start:
            return State.BLOCKED, f"{report.message}. {report.hint}"
        return None

    service = Service(
        spec,
        bus=services.bus,
        log_dir=services.workspace.logs,
        precheck=precheck,
        echo=stderr_echo() if echo else None,
        refresh=make_spec,
    )
    supervisor.add(service)
    service.start()
    # let it spawn now, before the dashboard's imports hold the loop for a second or two
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(service.spawned.wait(), 10)


def _start_events(
    services: Services, supervisor: Supervisor, settings: Settings, report: gpu.GpuReport
) -> bool:
    """ComfyUI's WebSocket relayed onto the bus, and the background torch check.

    Run once the dashboard listens: ComfyUI takes seconds to boot anyway, and the relay wakes up
    when the supervisor says it runs.
    """
    gateway = _gateway(services)
    if not settings.comfyui_installed:
        return False
    gateway.start_events(services.bus)
    if report.devices and report.torch_check != "import":
        task = asyncio.create_task(_deep_check(services, settings), name="gpu-deep-check")
        supervisor.background.add(task)
        task.add_done_callback(supervisor.background.discard)
    return True


def _http(services: Services) -> aiohttp.ClientSession:
    """The shared aiohttp session (aiohttp is imported after ComfyUI's spawn: see the docstring)."""
    if services.http is None:
        import aiohttp

        services.http = aiohttp.ClientSession()
    return services.http


def _gateway(services: Services) -> ComfyUIGateway:
    """The gateway to ComfyUI, on the shared aiohttp session."""
    from .comfyui import ComfyUIClient, ComfyUIGateway

    if services.comfyui is None:
        services.comfyui = ComfyUIGateway(ComfyUIClient(_http(services), services.settings.comfyui_url))
    return services.comfyui


async def _deep_check(services: Services, settings: Settings) -> None:
    report = await gpu.deep_preflight(settings.comfyui_python)
    services.gpu = report
    if report.verdict != "ok":
        log.warning("GPU (torch import): %s (%s)", report.message, report.hint)


async def _shutdown(
    services: Services, supervisor: Supervisor, relaying: bool, server: _Server | None
) -> None:
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
        for task in list(supervisor.background):
            task.cancel()
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


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
