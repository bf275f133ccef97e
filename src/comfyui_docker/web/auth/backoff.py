"""How often a client may try a password or a token (see the package docstring)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """At most `max_failures` failed attempts per client within `window` seconds."""

    def __init__(
        self, max_failures: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self._clock()
        q = self._fails.get(client)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        if not q:
            self._fails.pop(client, None)
        return q

    def retry_after(self, client: str) -> int:
        """0 when the client may try now, else the seconds to wait."""
        q = self._recent(client)
        if len(q) < self.max_failures:
            return 0
        return max(1, int(self.window - (self._clock() - q[0]) + 0.999))

    def failed(self, client: str) -> None:
        if len(self._fails) > 10_000:  # bound memory under a flood of addresses
            self._fails.clear()
        self._recent(client)
        self._fails.setdefault(client, deque()).append(self._clock())

    def succeeded(self, client: str) -> None:
        self._fails.pop(client, None)
