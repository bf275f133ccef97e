"""What to run and how patiently: the generic process spec used for ComfyUI, nginx and sshd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: A readiness probe: True once the service answers as ours. None: ready once started.
Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Timings:
    """Named timings of one supervised service (seconds).

    start_grace     a start counts as good (the retry counter resets) after running this long
    ready_timeout   from spawn until the probe must say ready, else the start failed (hang)
    poll_interval   how often the readiness probe runs while starting
    retries         failed starts in a row before `fatal`
    backoff_base    wait before the first restart; doubles per failure ...
    backoff_cap     ... up to this
    stop_sigint     after SIGINT (clean stop), wait this long before SIGTERM
    stop_sigterm    after SIGTERM, wait this long before SIGKILL
    """

    start_grace: float = 30.0
    ready_timeout: float = 180.0
    poll_interval: float = 0.25
    retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    stop_sigint: float = 6.0
    stop_sigterm: float = 2.5

    def backoff(self, failures: int) -> float:
        """Delay before restart number `failures` (1-based)."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised child. `identity` must appear in its command line (PID-reuse check)."""

    name: str
    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    identity: str = ""
    probe: Probe | None = None
    timings: Timings = field(default_factory=Timings)
    log_name: str = ""  # file under workspace/logs; default "<name>.log"

    @property
    def log_file(self) -> str:
        return self.log_name or f"{self.name}.log"
