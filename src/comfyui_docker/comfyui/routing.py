"""Which ComfyUI a request goes to, when there are several (one per GPU).

    placing()          a new prompt: the running instance with the shortest queue (running +
                       pending, from each one's `GET /prompt`, plus the prompts sent to it that
                       this answer may not count yet); ties go to the first in order
    holder(prompt_id)  the instance a prompt was sent to (remembered at submission, bounded)
    up()               the instances whose supervised service runs now (all, without a supervisor)

With one instance nothing is asked: it gets everything. An instance that does not answer its
queue length within the probe timeout (hung, restarting) is passed over, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence

from ..errors import ServiceUnavailable
from .client import ComfyUIClient
from .errors import ComfyUIError

log = logging.getLogger(__name__)

#: How many prompt ids are remembered with their instance (oldest forgotten first).
REMEMBERED = 10_000
#: Says whether the supervised service of that name runs now.
IsUp = Callable[[str], bool]


class Router:
    def __init__(self, clients: Sequence[ComfyUIClient], is_up: IsUp | None = None) -> None:
        if not clients:
            raise ValueError("a router needs at least one ComfyUI client")
        self.clients = tuple(clients)
        self.is_up = is_up
        self._holders: OrderedDict[str, ComfyUIClient] = OrderedDict()
        # Per instance, the prompts placed on it: when their POST /prompt ended (None: not yet).
        # A queue length asked at t0 counts those that ended before t0; the others are added.
        self._placed: dict[str, list[list[float | None]]] = {c.name: [] for c in self.clients}
        self._choosing = asyncio.Lock()
        self.clock = time.monotonic

    @property
    def several(self) -> bool:
        return len(self.clients) > 1

    def up(self) -> list[ComfyUIClient]:
        """The instances that run now, in order (every one, when nobody supervises them)."""
        if self.is_up is None:
            return list(self.clients)
        return [c for c in self.clients if self.is_up(c.name)]

    def any_up(self) -> ComfyUIClient:
        """One running instance, for what any of them answers alike (shared volume, same nodes)."""
        running = self.up()
        return running[0] if running else self.clients[0]

    def named(self, name: str) -> ComfyUIClient:
        for client in self.clients:
            if client.name == name:
                return client
        raise KeyError(name)

    # ---- prompt ids --------------------------------------------------------------------------
    def remember(self, prompt_id: str, client: ComfyUIClient) -> None:
        self._holders[prompt_id] = client
        self._holders.move_to_end(prompt_id)
        while len(self._holders) > REMEMBERED:
            self._holders.popitem(last=False)

    def holder(self, prompt_id: str | None) -> ComfyUIClient | None:
        """The instance `prompt_id` was sent to; with one instance, that one."""
        if not self.several:
            return self.clients[0]
        return self._holders.get(prompt_id) if prompt_id else None

    # ---- where a new prompt goes -------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def placing(self) -> AsyncIterator[ComfyUIClient]:
        """The instance a new prompt goes to: submit it inside the block, so that prompts sent
        together spread too (each one counts in its instance's queue from here on)."""
        if not self.several:
            yield self.clients[0]
            return
        async with self._choosing:
            client = await self._shortest()
            mark: list[float | None] = [None]
            self._placed[client.name].append(mark)
        try:
            yield client
        finally:
            mark[0] = self.clock()

    async def _shortest(self) -> ComfyUIClient:
        running = self.up()
        if not running:
            raise ServiceUnavailable(
                "no ComfyUI instance is running",
                hint="they may be starting or restarting; the dashboard's Home shows each one's state",
                state="unavailable",
            )
        asked = self.clock()
        lengths = await asyncio.gather(*(self._length(c) for c in running))
        answered = []
        for order, (client, length) in enumerate(zip(running, lengths, strict=True)):
            unseen = [m for m in self._placed[client.name] if m[0] is None or m[0] >= asked]
            self._placed[client.name] = unseen  # later answers count the others too
            if length is not None:
                answered.append((length + len(unseen), order, client))
        if not answered:
            raise ServiceUnavailable(
                "no ComfyUI instance answers",
                hint="they may be busy starting; try again in a few seconds",
                state="unreachable",
            )
        return min(answered, key=lambda t: (t[0], t[1]))[2]

    async def _length(self, client: ComfyUIClient) -> int | None:
        try:
            return await client.queue_remaining()
        except (ServiceUnavailable, ComfyUIError) as exc:
            log.debug("%s does not say its queue: %s", client.name, exc)
            return None
