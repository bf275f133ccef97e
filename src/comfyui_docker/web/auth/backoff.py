"""How fast a client may guess: a backoff per address, a cap for everyone, a lane for known browsers.

    per address   the first `free` failures cost nothing; after that each attempt waits
                  base * 2**(failures - free) seconds after the last failure, at most `cap`.
                  An address is forgotten `forget` seconds after its last failure, or when the
                  table is full and it is the one that failed longest ago (LRU; never the whole
                  table at once). A right password does not reset an address's count: behind one
                  proxy address the next guess may be someone else's.
    everyone      at most `global_limit` failures per `global_window` seconds from all addresses
                  together: spreading a guess list over many addresses gains nothing.
    known browser a browser that has logged in here before carries a signed device cookie; it
                  has its own counter and is never held up by other clients' failures. This is
                  how the owner still gets in while someone sprays guesses from behind the same
                  proxy address (RunPod's, Docker's): those addresses all look alike.

Only attempts that were actually checked count as failures; an attempt refused for waiting is
not checked, so it neither counts nor tells the client anything about the password.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int
    last: float


class _Table:
    """Failure counts by key, oldest failure first (an LRU bounded by `size`)."""

    def __init__(self, size: int, forget: float) -> None:
        self.size = size
        self.forget = forget
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def expire(self, now: float) -> None:
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if now - entry.last < self.forget:
                return
            del self.entries[key]

    def get(self, key: str, now: float) -> _Entry | None:
        self.expire(now)
        return self.entries.get(key)

    def fail(self, key: str, now: float) -> None:
        self.expire(now)
        entry = self.entries.pop(key, None) or _Entry(0, now)
        entry.failures += 1
        entry.last = now
        self.entries[key] = entry
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def clear(self, key: str) -> None:
        self.entries.pop(key, None)


class LoginBackoff:
    def __init__(
        self,
        *,
        free: int = 5,
        base: float = 1.0,
        cap: float = 60.0,
        forget: float = 900.0,
        global_limit: int = 20,
        global_window: float = 60.0,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.global_limit = global_limit
        self.global_window = global_window
        self._clock = clock
        self._clients = _Table(size, forget)
        self._devices = _Table(size, forget)
        self._recent: deque[float] = deque(maxlen=global_limit)

    def _delay(self, entry: _Entry | None, now: float) -> float:
        if entry is None or entry.failures < self.free:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** (entry.failures - self.free))
        return max(0.0, entry.last + delay - now)

    def _global(self, now: float) -> float:
        if len(self._recent) < self.global_limit:
            return 0.0
        return max(0.0, self._recent[0] + self.global_window - now)

    def wait(self, client: str, device: str | None = None) -> int:
        """Whole seconds before this client may try again; 0: it may try now."""
        now = self._clock()
        if device:
            seconds = self._delay(self._devices.get(device, now), now)
        else:
            seconds = max(self._delay(self._clients.get(client, now), now), self._global(now))
        return math.ceil(seconds) if seconds > 0 else 0

    def failed(self, client: str, device: str | None = None) -> None:
        now = self._clock()
        if device:
            self._devices.fail(device, now)
            return
        self._clients.fail(client, now)
        self._recent.append(now)

    def succeeded(self, client: str, device: str | None = None) -> None:
        """A right password: the browser's own count starts again. An address's count does not:
        behind one proxy address the next guess may come from someone else."""
        if device:
            self._devices.clear(device)

    def tracked(self) -> int:
        """Addresses remembered now (for tests and the benchmark)."""
        return len(self._clients.entries)
