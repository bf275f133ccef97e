"""The supervisor: one `Service` per child (explicit state machine, see states.py) and a
`Supervisor` holding them by name (what `services.supervisor` is).

Everything slow is injected: the process factory (default: a real subprocess), the clock and the
sleep function, so tests can run the state machine against scripted children or real ones.
Every state change is published as a `ServiceState` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..events import EventBus, ServiceState
from .logcapture import LogCapture
from .process import Child, Identity, ProcessFactory, signal_group, spawn, stop_child
from .spec import ProcessSpec
from .states import State, check_move

log = logging.getLogger(__name__)
FATAL_LINES = 30

#: Run before every start: None to go ahead, or (NOT_INSTALLED | BLOCKED, why) to hold.
Precheck = Callable[[], Awaitable[tuple[State, str] | None]]
#: Run before every spawn: the spec to start with (ComfyUI's argv follows the volume's nodes).
Refresh = Callable[[], ProcessSpec]


@dataclass(frozen=True)
class Status:
    name: str
    state: State
    detail: str = ""
    pid: int | None = None
    restarts: int = 0
    failures: int = 0
    since: float = 0.0
    last_exit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "detail": self.detail,
            "pid": self.pid,
            "restarts": self.restarts,
            "failures": self.failures,
            "since": self.since,
            "last_exit": self.last_exit,
        }


class Service:
    """One supervised child and its state machine."""

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        bus: EventBus | None = None,
        log_dir: Path | None = None,
        factory: ProcessFactory = spawn,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        echo: TextIO | None = None,
        precheck: Precheck | None = None,
        refresh: Refresh | None = None,
    ) -> None:
        self.spec = spec
        self.precheck = precheck
        self.refresh = refresh
        self.bus = bus
        self.factory = factory
        self.clock = clock
        self.sleep = sleep
        self.logs = LogCapture(spec.name, log_dir / spec.log_file if log_dir else None, bus, echo=echo)
        self.state = State.STOPPED
        self.detail = ""
        self.child: Child | None = None
        self.identity: Identity | None = None
        self.failures = 0
        self.restarts = 0
        self.last_exit: int | None = None
        self.since = time.time()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._notes: set[asyncio.Future[None]] = set()
        self.spawned = asyncio.Event()  # set once the first attempt has spawned (or was held)

    # ---- public API ------------------------------------------------------------------------
    def status(self) -> Status:
        pid = self.child.pid if self.child is not None and self.child.returncode is None else None
        return Status(
            self.spec.name,
            self.state,
            self.detail,
            pid,
            self.restarts,
            self.failures,
            self.since,
            self.last_exit,
        )

    def start(self, *, force: bool = False) -> None:
        """Begin supervising (returns at once; the loop runs as a task). `force` skips the precheck."""
        if self._task is not None and not self._task.done():
            return
        self.failures = 0
        self._task = asyncio.create_task(self._run(force), name=f"supervise-{self.spec.name}")

    def hold(self, state: State, detail: str) -> None:
        """Do not start; show why (not_installed, blocked)."""
        self._set(state, detail)

    async def block(self, detail: str) -> None:
        """Stop it and hold it `blocked` with `detail` (a check after the start found it cannot
        run there); a restart forces it, as from any `blocked`."""
        await self.stop()
        self.hold(State.BLOCKED, detail)

    async def stop(self) -> None:
        """Stop supervising and stop the child (SIGINT → SIGTERM → SIGKILL)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._kill_child()
        if self.state not in (State.NOT_INSTALLED, State.BLOCKED):
            self._set(State.STOPPED, "stopped on request")
        self.logs.close()

    async def restart(self) -> None:
        """Stop the child if any, forget past failures, start again (also from fatal).

        From `blocked` the restart is the user's override: the precheck is skipped once.
        """
        force = self.state == State.BLOCKED
        await self.stop()
        self.restarts += 1
        self.start(force=force)

    async def wait_state(self, *states: State, timeout: float) -> State:
        """Wait until the state is one of `states` (for tests and the CLI)."""

        async def _wait() -> State:
            async with self._changed:
                await self._changed.wait_for(lambda: self.state in states)
                return self.state

        return await asyncio.wait_for(_wait(), timeout)

    # ---- the loop ----------------------------------------------------------------------------
    def _set(self, state: State, detail: str = "") -> None:
        check_move(self.state, state)
        changed = (state, detail) != (self.state, self.detail)
        self.state, self.detail = state, detail
        if not changed:
            return
        self.since = time.time()
        pid = self.child.pid if self.child is not None and self.child.returncode is None else None
        log.info("%s: %s%s", self.spec.name, state.value, f" ({detail})" if detail else "")
        if self.bus is not None:
            self.bus.publish(ServiceState(service=self.spec.name, state=state.value, detail=detail, pid=pid))
        task = asyncio.ensure_future(self._notify())
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _run(self, force: bool) -> None:
        t = self.spec.timings
        if self.precheck is not None and not force:
            held = await self.precheck()
            if held is not None:
                self._set(*held)
                self.spawned.set()
                return
        while True:
            self._set(State.STARTING, f"attempt {self.failures + 1} of {t.retries + 1}")
            outcome = await self._one_life()
            if outcome is None:
                return  # cancelled by stop()
            self.failures += 1
            if self.failures > t.retries:
                lines = "\n".join(self.logs.tail(FATAL_LINES))
                self._set(
                    State.FATAL,
                    f"{outcome}; gave up after {self.failures} failed starts in a row. "
                    f"Last log lines:\n{lines}",
                )
                return
            delay = t.backoff(self.failures)
            self._set(State.BACKOFF, f"{outcome}; restarting in {delay:g} s")
            await self.sleep(delay)

    async def _one_life(self) -> str | None:
        """Spawn, wait for ready, then for the exit. Returns why it ended (None: cancelled)."""
        if self.refresh is not None:
            try:
                self.spec = self.refresh()
            except Exception as exc:  # keep the last spec rather than not starting at all
                log.warning(
                    "%s: cannot refresh its command line, using the last one: %s", self.spec.name, exc
                )
        t = self.spec.timings
        try:
            self.child = await self.factory(self.spec)
        except OSError as exc:
            self.logs.add(f"[supervisor] cannot start {self.spec.argv[0]}: {exc}")
            return f"cannot start: {exc.strerror or exc}"
        finally:
            self.spawned.set()
        child = self.child
        self.identity = Identity(child.pid, self.spec.identity)
        reader = asyncio.create_task(self._pump(child), name=f"log-{self.spec.name}")
        exited = asyncio.create_task(child.wait(), name=f"wait-{self.spec.name}")
        try:
            started = self.clock()
            ready = await self._wait_ready(exited, started)
            if ready is not True:
                if ready == "timeout":
                    await self._kill_child()
                    return f"not ready after {t.ready_timeout:g} s"
                return self._exit_text(exited)
            self._set(State.RUNNING, f"pid {child.pid}")
            try:
                await asyncio.wait_for(asyncio.shield(exited), t.start_grace)
            except TimeoutError:
                self.failures = 0  # a good start: the next crash starts the backoff from the bottom
                await exited
            return self._exit_text(exited)
        except asyncio.CancelledError:
            await self._kill_child()  # stop() cancelled us: stop the child before the log pump
            exited.cancel()
            raise
        finally:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, 2.0)

    async def _wait_ready(self, exited: asyncio.Task[int], started: float) -> bool | str:
        t = self.spec.timings
        probe = self.spec.probe
        while True:
            if exited.done():
                return "exited"
            if probe is None or await _safe(probe):
                return True
            if self.clock() - started > t.ready_timeout:
                return "timeout"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), t.poll_interval)

    def _exit_text(self, exited: asyncio.Task[int]) -> str:
        code = exited.result() if exited.done() and not exited.cancelled() else None
        self.last_exit = code
        self.logs.add(f"[supervisor] {self.spec.name} exited with code {code}")
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        return f"exited with code {code}"

    async def _pump(self, child: Child) -> None:
        if child.stdout is not None:
            await self.logs.feed(child.stdout)

    async def _kill_child(self) -> None:
        child, identity = self.child, self.identity
        if child is None or identity is None or child.returncode is not None:
            return
        t = self.spec.timings
        code = await stop_child(child, identity, t.stop_sigint, t.stop_sigterm, self.logs.add)
        self.last_exit = code


async def _safe(probe: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return bool(await probe())
    except Exception as exc:  # a probe must never take the supervisor down
        log.debug("probe failed: %s", exc)
        return False


class Supervisor:
    """All supervised services of this runtime, by name."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.background: set[asyncio.Task[Any]] = set()

    def add(self, service: Service) -> Service:
        self.services[service.spec.name] = service
        return service

    def get(self, name: str) -> Service:
        return self.services[name]

    def status(self, name: str = "comfyui") -> Status:
        return self.services[name].status()

    def log_tail(self, name: str, lines: int) -> list[str]:
        """The last `lines` lines `name` wrote (KeyError when it is not supervised)."""
        return self.services[name].logs.tail(lines)

    def all(self) -> list[Status]:
        return [s.status() for s in self.services.values()]

    async def restart(self, name: str = "comfyui") -> None:
        await self.services[name].restart()

    async def stop(self) -> None:
        """Stop every service, all at once (their stop sequences run in parallel)."""
        await asyncio.gather(*(s.stop() for s in self.services.values()), return_exceptions=True)

    def kill_all(self) -> None:
        """Last resort (shutdown budget spent): SIGKILL every child's process group now."""
        for service in self.services.values():
            child, identity = service.child, service.identity
            if child is not None and identity is not None:
                signal_group(child, identity, signal.SIGKILL)
