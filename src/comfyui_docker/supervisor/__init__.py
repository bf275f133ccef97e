"""Supervision of child processes (ComfyUI, nginx, sshd): specs, state machine, log capture."""

from .manager import Service, Status, Supervisor
from .spec import ProcessSpec, Timings
from .states import State

__all__ = ["ProcessSpec", "Service", "State", "Status", "Supervisor", "Timings"]
