"""The states of a supervised service and the moves between them.

    not_installed            nothing to run (e.g. no ComfyUI at COMFYUI_ROOT); restart re-checks
    blocked                  a preflight check refused the start (e.g. CUDA mismatch); restart forces it
          │ start / restart
          ▼
    stopped ──► starting ──(probe ok)──► running ──(exits)──┐
                   ▲  │                                     │
                   │  └─(exits / ready timeout)──┐          │
                   │                             ▼          ▼
                   └──────(delay)────────── backoff ◄── failure counted
                                                 │ (failures > retries)
                                                 ▼
                                               fatal (last log lines in the detail)

`stop()` moves any state to `stopped`; `restart()` leaves `fatal`, `blocked`, `not_installed`.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FATAL = "fatal"
    NOT_INSTALLED = "not_installed"
    BLOCKED = "blocked"


ALLOWED: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset({State.STARTING, State.NOT_INSTALLED, State.BLOCKED, State.STOPPED}),
    State.STARTING: frozenset({State.RUNNING, State.BACKOFF, State.FATAL, State.STOPPED}),
    State.RUNNING: frozenset({State.BACKOFF, State.FATAL, State.STOPPED, State.STARTING}),
    State.BACKOFF: frozenset({State.STARTING, State.STOPPED}),
    State.FATAL: frozenset({State.STARTING, State.STOPPED}),
    State.NOT_INSTALLED: frozenset({State.STARTING, State.STOPPED, State.NOT_INSTALLED}),
    State.BLOCKED: frozenset({State.STARTING, State.STOPPED, State.BLOCKED}),
}


def check_move(old: State, new: State) -> None:
    if new not in ALLOWED[old]:
        raise RuntimeError(f"illegal service state change {old} -> {new}")
