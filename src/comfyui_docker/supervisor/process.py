"""Spawning and signalling children: own session (process group), SIGINT reset before exec.

A child started from a shell with `&` inherits SIGINT *ignored*, and an ignored signal survives
exec, so ComfyUI would never see its clean-shutdown signal. `_child_setup` runs in the child
between fork and exec and puts SIGINT/SIGTERM back to their defaults and clears the signal mask.
Signals go to the whole process group (ComfyUI's own children included), and only after checking
that the PID still belongs to the process we started (PID reuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

import psutil

from .spec import ProcessSpec

STREAM_LIMIT = 1024 * 1024


class Child(Protocol):
    """What the supervisor needs from a running child (asyncio.subprocess.Process fits)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...


ProcessFactory = Callable[[ProcessSpec], Awaitable[Child]]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _parent_death_signal() -> Callable[[], None]:
    """A function for the child that asks Linux to SIGTERM it when the runtime dies.

    Without it, a runtime killed with SIGKILL (or crashing) would leave ComfyUI and nginx running
    and holding their ports. libc is looked up here, in the parent, not between fork and exec.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # not Linux: the process group is still signalled on stop
        return lambda: None
    parent = os.getpid()

    def arm() -> None:  # pragma: no cover - runs in the child
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the runtime died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _child_setup(arm_death_signal: Callable[[], None]) -> None:  # pragma: no cover - in the child
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    arm_death_signal()


async def spawn(spec: ProcessSpec) -> Child:
    """The default process factory: stdout+stderr in one pipe, own session, clean signals,
    and a SIGTERM from the kernel if the runtime itself dies."""
    arm = _parent_death_signal()
    env = dict(os.environ if spec.env is None else spec.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = await asyncio.create_subprocess_exec(
        *spec.argv,
        cwd=str(spec.cwd) if spec.cwd else None,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: _child_setup(arm),
        limit=STREAM_LIMIT,
    )
    return proc


class Identity:
    """Who the child was when we started it: PID + start time (+ a word of its command line)."""

    def __init__(self, pid: int, marker: str) -> None:
        self.pid = pid
        self.marker = marker
        try:
            self.create_time: float | None = psutil.Process(pid).create_time()
        except psutil.Error:
            self.create_time = None

    def still_ours(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            if self.create_time is not None and abs(proc.create_time() - self.create_time) > 0.01:
                return False
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True  # ours, exited, not yet reaped: signalling it is harmless
            if self.marker:
                return any(self.marker in part for part in proc.cmdline())
            return True
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True


def signal_group(child: Child, identity: Identity, sig: int) -> bool:
    """Send `sig` to the child's process group; False when it is gone or no longer ours."""
    if child.returncode is not None or not identity.still_ours():
        return False
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
    return True


async def wait_for(child: Child, timeout: float) -> bool:
    """True when the child exited within `timeout` seconds."""
    try:
        await asyncio.wait_for(asyncio.shield(child.wait()), timeout)
    except TimeoutError:
        return False
    return True


async def stop_child(
    child: Child,
    identity: Identity,
    sigint_wait: float,
    sigterm_wait: float,
    note: Callable[[str], None] | None = None,
) -> int | None:
    """SIGINT → wait → SIGTERM → wait → SIGKILL (group-wide). Returns the exit code."""
    steps = ((signal.SIGINT, sigint_wait), (signal.SIGTERM, sigterm_wait), (signal.SIGKILL, 5.0))
    for sig, wait in steps:
        if child.returncode is not None:
            break
        if not signal_group(child, identity, sig):
            break
        if note is not None and sig != signal.SIGINT:
            note(f"still running after the previous signal; sending {signal.Signals(sig).name}")
        if await wait_for(child, wait):
            break
    if child.returncode is None:
        await wait_for(child, 1.0)
    # the group may hold stragglers (a node's helper process): make sure none survive
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    return child.returncode
