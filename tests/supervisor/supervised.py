"""Shared constants of the supervisor tests (a module with a unique name, not conftest)."""

from __future__ import annotations

from collections.abc import Callable

from comfyui_docker.supervisor import Service, Timings

FAST = Timings(
    start_grace=0.6,
    ready_timeout=8.0,
    poll_interval=0.05,
    retries=2,
    backoff_base=0.2,
    backoff_cap=1.0,
    stop_sigint=1.0,
    stop_sigterm=1.0,
)

MakeService = Callable[..., Service]
