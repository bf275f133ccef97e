"""`comfyui-docker serverless`: a RunPod Serverless worker from the same image as the pods.

Two threads, because the RunPod SDK owns the main one (`runpod.serverless.start` blocks, runs its
own event loop and installs its signal handlers):

    runtime thread   our asyncio loop: the start-up phases shared with `start` (volume, yaml,
                     GPU preflight, ComfyUI supervised; no dashboard, nginx or sshd), the preset
                     service, then every job (`JobRunner`)
    main thread      imports the SDK while ComfyUI boots, waits until ComfyUI is ready (or will not
                     be), then `runpod.serverless.start({"handler": ...})`; the handler hands each
                     job to the runtime loop and awaits its answer

The SDK reads its own arguments from `sys.argv` (`--rp_serve_api`, `--rp_api_port`,
`--rp_api_host`, `--test_input`, ...): the CLI passes them on, so the SDK's local test server
runs this very handler. When the SDK returns (SIGTERM, the end of a `--test_input` run), ComfyUI
is stopped cleanly (SIGINT, then SIGTERM, SIGKILL).

Cold start is logged: ComfyUI ready, and the first job accepted, each in seconds since the
process started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..children.comfyui import COMFYUI_TIMINGS
from ..errors import AppError
from ..logs import configure
from ..services import Services
from ..settings import Settings
from ..supervisor import State, Supervisor, Timings
from .config import ServerlessSettings

if TYPE_CHECKING:  # imported once ComfyUI is spawned (aiohttp and the workflow tools: ~0.2 s)
    from .jobs import JobRunner
    from .outputs import Uploader
    from .progress import Send

log = logging.getLogger("comfyui_docker.serverless")
#: How long stopping may take before the runtime thread is left behind (docker stop: 10 s).
STOP_JOIN_S = 11.0
#: The SDK's log levels for ours (the SDK defaults to DEBUG, which logs every output in full).
SDK_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}
#: ComfyUI's timings, with readiness polled more often: jobs are taken the moment it answers.
SERVERLESS_TIMINGS = dataclasses.replace(COMFYUI_TIMINGS, poll_interval=0.05)
SDK_HINT = "pip install 'comfyui-docker[serverless]' (the image has it)"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def process_started() -> float:
    """When this process started (epoch seconds), imports included: its start in clock ticks
    since boot against the uptime (psutil's create_time adds the boot time in whole seconds)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class Runtime:
    """ComfyUI supervised and the job runner, on an event loop in a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        options: ServerlessSettings,
        *,
        comfyui_timings: Timings | None = None,
        echo_children: bool = True,
    ) -> None:
        self.settings = settings
        self.options = options
        self.comfyui_timings = comfyui_timings
        self.echo_children = echo_children
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: JobRunner | None = None
        self.state: State | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.spawned = threading.Event()  # ComfyUI's process started (or the boot failed)
        self.spawned_at = 0.0
        self._loop_made = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name="comfyui-docker-runtime", daemon=True)

    # ---- from the main thread ----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def attach(self, send_progress: Send | None, uploader: Uploader | None) -> None:
        """The SDK's `progress_update` and upload helper, once the main thread imported them."""
        if self.runner is not None:
            self.runner.send_progress = send_progress
            self.runner.sender.uploader = uploader

    def submit(self, job: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """Run `job` on the runtime loop; the future holds its output."""
        if self.loop is None or self.runner is None or not self._thread.is_alive():
            from .failures import ComfyUIDown, error_output

            future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
            down = ComfyUIDown(f"the worker could not start: {self.error or 'not started'}")
            future.set_result(error_output(down))
            return future
        return asyncio.run_coroutine_threadsafe(self.runner.run(job), self.loop)

    def stop(self, timeout: float = STOP_JOIN_S) -> None:
        """Stop ComfyUI and the loop (from any thread but the runtime's); waits up to `timeout`.
        Also right after `start`: the stop is queued on the loop before anything runs on it."""
        if not self._thread.is_alive():
            return
        self._loop_made.wait(timeout)
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed in between: the thread is ending anyway
                pass
        self._thread.join(timeout)

    # ---- the runtime thread ------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            with asyncio.Runner() as runner:
                self.loop = runner.get_loop()
                self._stop = asyncio.Event()
                self._loop_made.set()
                runner.run(self._main())
        except Exception as exc:  # reported to the main thread, which exits
            log.exception("the serverless runtime stopped")
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self._loop_made.set()
            self.spawned.set()
            self.ready.set()

    async def _main(self) -> None:
        from ..startup import boot_comfyui, shutdown

        assert self._stop is not None
        services = Services.create(self.settings)
        supervisor = Supervisor()
        services.supervisor = supervisor
        try:
            try:
                _, nodes = await boot_comfyui(
                    services,
                    supervisor,
                    echo_children=self.echo_children,
                    comfyui_timings=self.comfyui_timings or SERVERLESS_TIMINGS,
                    log_file="serverless.log",
                    several=False,  # one ComfyUI: a serverless worker takes one job at a time
                )
            finally:
                self.spawned_at = time.time()
                self.spawned.set()
            from .jobs import DOWN

            self.runner = await self._build(services, supervisor)
            from ..nodes.startup import start_background

            start_background(services, nodes)  # what the custom-nodes phase left (ComfyUI restarts when idle)
            comfyui = supervisor.get("comfyui")
            waiting = asyncio.ensure_future(comfyui.wait_state(State.RUNNING, *DOWN, timeout=7 * 86400))
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            for task in (waiting, stopping):
                task.cancel()
            self.state = comfyui.status().state
            self.ready.set()
            await self._stop.wait()
        except AppError as exc:
            self.error = str(exc)
            log.error("the serverless worker could not start: %s", exc)
        finally:
            self.ready.set()
            await shutdown(services, supervisor)

    async def _build(self, services: Services, supervisor: Supervisor) -> JobRunner:
        from ..startup import load_presets
        from ..workflows.object_info import ObjectInfoStore
        from ..workflows.service import WorkflowService
        from .jobs import JobRunner
        from .outputs import OutputSender

        gateway = services.gateway()
        presets = load_presets(services)
        if presets is not None:
            await presets.start()  # unfinished installs resume; install_missing downloads through it
            await presets.queue_startup(services.settings.startup_presets)
        workspace = services.workspace
        workflows = WorkflowService(
            definitions=ObjectInfoStore(workspace.cache),
            models_root=workspace.models,
            gateway=gateway,
            presets=presets,
        )
        timings = supervisor.get("comfyui").spec.timings
        return JobRunner(
            workflows=workflows,
            gateway=gateway,
            comfyui=supervisor.get("comfyui"),
            options=self.options,
            sender=OutputSender(gateway),
            inputs_dir=workspace.uploads,
            presets=presets,
            ready_wait_s=timings.ready_timeout + timings.backoff_cap + 30,
        )


def make_handler(runtime: Runtime, started_at: float) -> Handler:
    """The function RunPod's SDK calls per job (in its own event loop)."""
    first = True

    async def handler(job: dict[str, Any]) -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            log.info("first job accepted %.2f s after the process started", time.time() - started_at)
        future = runtime.submit(job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # reaches the job's task: its prompt is taken out of ComfyUI
            raise

    return handler


def _sdk_level(settings: Settings) -> None:
    if not (os.environ.get("RUNPOD_LOG_LEVEL") or os.environ.get("RUNPOD_DEBUG_LEVEL")):
        os.environ["RUNPOD_LOG_LEVEL"] = SDK_LEVELS.get(settings.log_level, "INFO")


def _sigterm(signum: int, frame: FrameType | None) -> None:
    """docker stop / RunPod scaling down, outside the SDK's own handling (or re-raised by uvicorn
    after its shutdown): a requested stop, so exit code 0 once ComfyUI is stopped (as `start`)."""
    raise SystemExit(0)


def main(sdk_args: Sequence[str], environ: dict[str, str] | None = None) -> int:
    """The worker: returns when the SDK does (its exit code), ComfyUI stopped."""
    from .config import volume_env

    started_at = process_started()
    if importlib.util.find_spec("runpod") is None:
        raise AppError("the RunPod SDK is not installed", hint=SDK_HINT)
    settings = Settings.from_env(volume_env(os.environ if environ is None else environ))
    options = ServerlessSettings.from_env(os.environ if environ is None else environ)
    configure(settings.log_level, None)
    _sdk_level(settings)
    signal.signal(signal.SIGTERM, _sigterm)  # until the SDK installs its own: ComfyUI is stopped
    runtime: Runtime | None = None
    try:
        runtime = Runtime(settings, options)
        runtime.start()
        runtime.spawned.wait()  # ComfyUI first: its boot is the long pole
        try:
            import runpod.serverless  # ~2 s of imports, while ComfyUI boots
        except ImportError as exc:
            raise AppError(f"the RunPod SDK cannot be imported: {exc}", hint=SDK_HINT) from None

        from .outputs import sdk_uploader
        from .progress import runpod_job_api

        send = runpod.serverless.progress_update if runpod_job_api() else None
        uploader = sdk_uploader() if options.s3 else None
        runtime.ready.wait()
        if runtime.error is not None:
            return 1
        waited = time.time() - started_at
        if runtime.state is State.RUNNING:
            log.info(
                "ComfyUI ready %.2f s after the process started (spawned at %.2f s): taking jobs",
                waited,
                runtime.spawned_at - started_at,
            )
        else:
            log.error("ComfyUI is %s: jobs will fail with the reason (see comfyui.log)", runtime.state)
        runtime.attach(send, uploader)
        sys.argv = [sys.argv[0], *sdk_args]
        runpod.serverless.start({"handler": make_handler(runtime, started_at)})
        return 0
    finally:
        if runtime is not None:
            runtime.stop()
