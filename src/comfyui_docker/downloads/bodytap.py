"""The body of a large HTTP response, read straight off its connection into reused blocks.

aiohttp reads the socket into a fresh 256 KiB bytes object per `recv` and its parser copies
every buffer again before the reader sees it. For a multi-GB download that is most of the
event loop's work: two passes over every byte plus a stream of new pages for the allocator.
Once aiohttp has parsed the status line and headers of a response whose length is known
(`Content-Length`, no transfer coding), `BodyTap.take(resp, pool)` swaps the connection's
protocol for this one, a `BufferedProtocol`: the kernel copies straight into blocks that are
reused once the consumer gives them back. One copy, no parsing, no new memory. Blocks are
page-aligned (anonymous mmaps) and handed over ending on a 4 KiB boundary of the file, so a
writer can pass them to `O_DIRECT` as they are.

aiohttp's state for that connection is stale afterwards, so the tap closes the connection when
the body is done (never back to the pool); it is meant for large bodies, where one more TCP
connect is nothing. Everything else (small, chunked or unknown-length bodies) stays on aiohttp.

    pool = BlockPool()
    tap = BodyTap.take(resp, pool)          # None: not eligible, read resp.content as usual
    while (chunk := await tap.read(timeout=60)).view:
        use(chunk.view); pool.put(chunk.block)   # give the block back when done with it
    tap.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import aiohttp

TAKE_MIN = 1024 * 1024  # smaller bodies: aiohttp's copy costs less than a new connection
BLOCK = 4 * 1024 * 1024
HIGH_WATER = 4 * BLOCK  # bytes delivered but not yet read before the socket is paused
PARTIAL_MIN = 64 * 1024  # a block is handed over early (for progress) once it holds this much...
PARTIAL_AFTER = 0.2  # ...and this many seconds passed since the last one
ALIGN = 4096  # blocks end on this boundary of the file (O_DIRECT's unit), except the last


class Chunk(NamedTuple):
    view: memoryview | bytes  # empty at the end of the body
    block: mmap.mmap | None  # the pool block behind `view` (it starts there), to give back;
    # None for plain bytes


END = Chunk(b"", None)


class BlockPool:
    """Page-aligned blocks of one size, reused: a free list, not a cap (memory is bounded by
    the readers' flow control); a block that is never given back is garbage-collected."""

    def __init__(self, size: int = BLOCK, keep: int = 32) -> None:
        self.size = size
        self.keep = keep
        self.free: list[mmap.mmap] = []
        self.created = 0

    def get(self) -> mmap.mmap:
        if self.free:
            return self.free.pop()
        self.created += 1
        return mmap.mmap(-1, self.size)

    def put(self, block: mmap.mmap | None) -> None:
        if block is not None and len(block) == self.size and len(self.free) < self.keep:
            self.free.append(block)

    def put_all(self, blocks: list[mmap.mmap | None]) -> None:
        for block in blocks:
            self.put(block)


class BodyTap(asyncio.BufferedProtocol):
    """The rest of one response body, in pool blocks."""

    def __init__(
        self,
        remaining: int,
        pool: BlockPool,
        *,
        skew: int = 0,
        high_water: int = HIGH_WATER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.remaining = remaining  # body bytes not yet received from the socket
        self.pool = pool
        self.high_water = max(high_water, pool.size)
        self.low_water = self.high_water // 4
        self.clock = clock
        self.queue: deque[Chunk] = deque()
        self.queued = 0
        self.block: mmap.mmap | None = None
        self.fill = 0
        self.base = skew % ALIGN  # where in an ALIGN unit of the file the current block starts
        self.last = clock()
        self.transport: asyncio.Transport | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.previous: asyncio.BaseProtocol | None = None
        self.error: BaseException | None = None
        self.ended = False  # the socket closed or the whole body arrived
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    @classmethod
    def take(
        cls,
        resp: aiohttp.ClientResponse,
        pool: BlockPool,
        *,
        offset: int = 0,
        minimum: int = TAKE_MIN,
        high_water: int = HIGH_WATER,
    ) -> BodyTap | None:
        """Take over the rest of `resp`'s body, or None when it must stay with aiohttp
        (unknown length, chunked, content-encoded, small, or already all received).

        `offset`: where the body's first byte goes in the file, so that blocks end on
        ALIGN boundaries of the file."""
        length = resp.content_length
        conn = resp.connection
        if length is None or length < minimum or conn is None:
            return None
        if "Transfer-Encoding" in resp.headers:
            return None
        if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
            return None  # aiohttp decodes it; the tap would not
        transport = conn.transport
        content = resp.content
        if transport is None or transport.is_closing() or content.exception() is not None:
            return None
        received = content.total_bytes  # body bytes aiohttp has had so far
        if content.is_eof() or received >= length:
            return None
        # No await from here on: every byte aiohttp has received is in `content`, and every
        # later one reaches the tap.
        buffered = content.read_nowait(-1)
        tap = cls(length - received, pool, skew=offset + len(buffered), high_water=high_water)
        tap.response = resp
        tap.previous = conn.protocol
        if buffered:
            tap.queue.append(Chunk(buffered, None))
            tap.queued = len(buffered)
        tap.transport = transport
        transport.set_protocol(tap)
        if tap.queued >= tap.high_water:
            tap._pause()
        else:
            with contextlib.suppress(Exception):
                transport.resume_reading()  # aiohttp may have paused it for its own buffer
        return tap

    @property
    def held(self) -> int:
        """Bytes received from the socket and not yet read from the tap."""
        return self.queued + self.fill

    # ---- protocol (event loop) --------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        if self.ended or self.remaining <= 0:
            return memoryview(bytearray(PARTIAL_MIN))  # past the body: read and dropped
        if self.block is None:
            self.block = self.pool.get()
            self.fill = 0
        room = min(len(self.block) - self.base - self.fill, self.remaining)
        return memoryview(self.block)[self.fill : self.fill + room]

    def buffer_updated(self, nbytes: int) -> None:
        if self.ended or self.block is None:
            return
        self.fill += nbytes
        self.remaining -= nbytes
        if self.remaining <= 0:
            self._deliver()
            self.ended = True
        elif self.fill >= len(self.block) - self.base:
            self._deliver()  # a full block ends on an ALIGN boundary of the file
        elif self.fill >= PARTIAL_MIN and self.clock() - self.last >= PARTIAL_AFTER:
            # a slow connection still reports progress: what ends on a boundary goes now
            self._deliver(self.fill - (self.base + self.fill) % ALIGN)
        else:
            return
        if self.queued >= self.high_water and not self.ended:
            self._pause()
        self._wake()

    def _deliver(self, size: int | None = None) -> None:
        """Queue the first `size` bytes of the block (all by default); the rest (less than
        ALIGN) moves to the start of a fresh block."""
        block, fill = self.block, self.fill
        size = fill if size is None else min(size, fill)
        if block is None or size <= 0:
            if block is not None and not fill:
                self.pool.put(block)
                self.block, self.base = None, 0
            return
        self.block, self.fill, self.base = None, 0, 0
        if size < fill:
            self.block = self.pool.get()
            self.fill = fill - size
            self.block[: self.fill] = block[size:fill]
        self.queue.append(Chunk(memoryview(block)[:size], block))
        self.queued += size
        self.last = self.clock()

    def eof_received(self) -> bool:
        self._end(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        previous, self.previous = self.previous, None
        if previous is not None:
            with contextlib.suppress(Exception):
                previous.connection_lost(exc)  # aiohttp learns its connection is gone

    def _end(self, exc: BaseException | None) -> None:
        if not self.ended:
            self._deliver()  # what did arrive is good
            self.ended = True
            if self.remaining > 0:
                self.error = exc or ConnectionResetError("the connection closed before the body ended")
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    # ---- reader ----------------------------------------------------------------------
    async def read(self, timeout: float | None = None) -> Chunk:
        """The next piece of the body (`END` at its end). Raises ConnectionResetError when the
        connection ends early and TimeoutError after `timeout` seconds without a block."""
        while not self.queue:
            if self.ended:
                if self.error is not None:
                    raise ConnectionResetError(str(self.error) or type(self.error).__name__)
                return END
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            handle = None if timeout is None else loop.call_later(timeout, _time_out, waiter)
            try:
                await waiter
            finally:
                if handle is not None:
                    handle.cancel()
        chunk = self.queue.popleft()
        self.queued -= len(chunk.view)
        if self.paused and self.queued <= self.low_water and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        """Close the connection (aiohttp's state for it is stale); queued blocks go back."""
        while self.queue:
            self.pool.put(self.queue.popleft().block)
        self.queued = 0
        self.pool.put(self.block)
        self.block = None
        self.ended = True
        resp, self.response = self.response, None
        if resp is not None:
            resp.close()
        elif self.transport is not None:
            self.transport.close()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no data from the server"))
