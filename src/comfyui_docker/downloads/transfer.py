"""The plumbing of one transfer: blocks to the writer thread, retries, space checks, streams.

`Transfer` holds what every download strategy in fetch.py needs: a single writer thread per
file (pwrite + inline sha256, see partfile.py) fed through a bounded queue of blocks, so that
reading the socket and writing/hashing run on two cores; the retry budget (reset when bytes
arrive); the free-space check before the first byte; and `_stream`, which copies one HTTP body
into one piece of the `.part` file.

What a transfer uses from outside comes in one `Connection` (HTTP session, token lookup,
options, and the sleep and free-space probes tests replace), so this module needs nothing from
fetch.py: the import runs one way, fetch -> transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import mmap
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import DiskFull, DownloadError
from .bodytap import ALIGN, BlockPool, BodyTap, Chunk
from .diskio import Buffer
from .guard import UrlGuard
from .http import RetryPolicy, TokenLookup, Transient, open_response
from .partfile import PartFile, Piece

BLOCK = 4 * 1024 * 1024
SMALL_BLOCK = 64 * 1024
SUBMIT_EVERY = 0.2  # seconds: slow connections still report progress and keep little in memory
MIB = 1024 * 1024
FreeSpace = Callable[[Path], int]
Progress = Callable[[int], None]


def free_space(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@dataclass
class FetchOptions:
    connections: int = 8
    piece_size: int = 32 * MIB  # largest piece; smaller files get smaller pieces
    min_multi_size: int = 16 * MIB
    # A new download starts as one stream; after `split_after` seconds, if that stream is
    # slower than `split_below` bytes/s (a CDN capping each connection), the rest of the file
    # is split into pieces fetched over `connections` connections. A fast stream stays alone:
    # more connections would only cost CPU and out-of-order writes.
    split_after: float = 0.2
    split_below: float = 200e6
    split_ahead: int = 1 * MIB  # the first stream keeps this much past what it has read
    direct_io: bool = True  # aligned blocks bypass the page cache (O_DIRECT) where the volume allows
    tap_min: int = 64 * MIB  # bodies this large are read off the socket (BodyTap); pieces keep
    # their keep-alive connection instead (a new TLS connection per piece costs more)
    flush_every: int = 64 * MIB
    max_inflight_blocks: int = 16  # 64 MiB in flight: the socket keeps flowing during an fdatasync
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: aiohttp.ClientTimeout = field(
        default_factory=lambda: aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    )
    space_margin: int = 512 * MIB
    read_bufsize: int = 4 * MIB


@dataclass(frozen=True)
class Connection:
    """Everything a transfer takes from its caller, besides the file it makes."""

    session: aiohttp.ClientSession
    tokens: TokenLookup
    options: FetchOptions
    sleep: Callable[[float], Awaitable[Any]]
    free_space: FreeSpace
    guard: UrlGuard | None = None  # a workflow's URLs: allowed hosts, no internal address


class Transfer:
    def __init__(
        self,
        conn: Connection,
        url: str,
        dest: Path,
        size: int | None,
        sha256: str | None,
        progress: Progress,
        licence_url: str | None,
    ) -> None:
        self.conn = conn
        self.opt = conn.options
        self.url = url
        self.final_url = url
        self.dest = dest
        self.size = size
        self.sha256 = sha256.lower() if sha256 else None
        self.progress = progress
        self.licence_url = licence_url
        self.part = PartFile(
            dest.with_name(dest.name + ".part"),
            flush_every=self.opt.flush_every,
            direct_io=self.opt.direct_io,
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{dest.name[:20]}")
        self.loop = asyncio.get_running_loop()
        self.inflight = asyncio.Semaphore(self.opt.max_inflight_blocks)
        self.pool = BlockPool()  # the blocks BodyTap reads into, reused once written and hashed
        self.taps: dict[int, BodyTap] = {}  # piece index -> the tap streaming into it
        self.pending: set[asyncio.Future[None]] = set()
        self.failures = 0
        self.network = 0
        self.resumed_from = 0
        self.restarts = 0
        self.connections_used = 1
        self.space_checked = False

    # ---- helpers --------------------------------------------------------------------
    async def _io(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def _check_pending(self) -> None:
        for fut in [f for f in self.pending if f.done()]:
            self.pending.discard(fut)
            exc = fut.exception()
            if exc is not None:
                raise _disk_error(exc, self.dest) from exc

    async def _drain(self) -> None:
        if self.pending:
            await asyncio.wait(list(self.pending))
        self._check_pending()

    def _give_back(self, blocks: list[mmap.mmap | None]) -> None:
        """From the hash thread, once `blocks` are written and hashed: back to the pool."""
        if any(b is not None for b in blocks):
            with contextlib.suppress(RuntimeError):  # the loop is gone: the blocks just go
                self.loop.call_soon_threadsafe(self.pool.put_all, blocks)

    async def _submit(
        self,
        index: int,
        offset: int,
        blocks: list[Buffer],
        size: int,
        owned: list[mmap.mmap | None] | None = None,
        direct: bool = False,
    ) -> None:
        self._check_pending()
        await self.inflight.acquire()
        done = functools.partial(self._give_back, owned) if owned else None
        write = functools.partial(self.part.write, index, offset, blocks, done, direct=direct)
        fut = self.loop.run_in_executor(self.executor, write)
        fut.add_done_callback(lambda _f: self.inflight.release())
        self.pending.add(fut)
        self.network += size
        self.failures = 0  # bytes arrived: the retry budget starts again
        self.progress(size)

    def reached(self, index: int, piece: Piece) -> int:
        """How far the stream into `piece` has read its socket (written, in hand, or in its tap)."""
        tap = self.taps.get(index)
        return piece.start + piece.received + piece.pending + (tap.held if tap is not None else 0)

    def _check_space(self, needed: int) -> None:
        if self.space_checked:
            return
        self.space_checked = True
        free = self.conn.free_space(self.dest.parent)
        want = needed + self.opt.space_margin
        if free < want:
            raise DiskFull(
                f"not enough free space for {self.dest.name}: {needed / 1e9:.2f} GB still to download, "
                f"{free / 1e9:.2f} GB free (keeping {self.opt.space_margin / 1e9:.2f} GB spare)",
                hint="free space on the volume or use a bigger one",
                needed=needed,
                free=free,
                path=str(self.dest.parent),
            )

    async def _failed(self, exc: Transient) -> None:
        self.failures += 1
        if self.failures > self.opt.retry.attempts:
            raise DownloadError(
                f"giving up on {self.dest.name} after {self.failures} failed attempts: {exc}",
                hint="the .part file is kept; installing again resumes it",
                url=self.url,
            )
        await self.conn.sleep(self.opt.retry.delay(self.failures, exc.retry_after))

    async def _open(self, start: int | None, end: int | None, *, use_final: bool) -> aiohttp.ClientResponse:
        url = self.final_url if use_final else self.url
        resp, final = await open_response(
            self.conn.session,
            url,
            tokens=self.conn.tokens,
            start=start,
            end=end,
            timeout=self.opt.timeout,
            licence_url=self.licence_url,
            original_url=self.url,
            read_bufsize=self.opt.read_bufsize,
            guard=self.conn.guard,
        )
        if not use_final:
            self.final_url = final
        return resp

    async def _stream(self, resp: aiohttp.ClientResponse, index: int, piece: Piece) -> None:
        """Copy the body of `resp` into `piece` from `piece.received` on.

        A body of known length is read straight off the socket (`BodyTap`: no parser copy);
        others through aiohttp. The socket's buffers are handed to the writer thread as a
        list, never joined: the event loop only moves references, the writer thread
        `pwritev`s them and the hash thread hashes them one by one."""
        buf: list[Buffer] = []
        size = 0
        offset = piece.start + piece.received
        began = piece.received
        last = self.loop.time()
        tap = BodyTap.take(
            resp, self.pool, offset=offset, minimum=self.opt.tap_min, high_water=self.opt.read_bufsize
        )
        read = _tap_reader(tap, self.opt.timeout.sock_read) if tap else _aiohttp_reader(resp)
        if tap is not None:
            self.taps[index] = tap
        owned: list[mmap.mmap | None] = []  # pool blocks behind `buf`, given back once written
        direct = offset % ALIGN == 0  # `buf` can go to O_DIRECT: aligned in the file and memory
        try:
            while True:
                limit = piece.length  # read each time: a split may end this piece early
                if limit is not None and piece.received + size >= limit:
                    break
                try:
                    chunk, block = await read()
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    raise Transient(f"connection lost: {exc or type(exc).__name__}") from None
                if not chunk:
                    break
                limit = piece.length  # again: the piece may have been cut while we waited
                if limit is not None and piece.received + size + len(chunk) > limit:
                    chunk = chunk[: limit - piece.received - size]
                buf.append(chunk)
                owned.append(block)
                size += len(chunk)
                direct = direct and block is not None and len(chunk) % ALIGN == 0
                piece.pending = size
                if size >= BLOCK or (size >= SMALL_BLOCK and self.loop.time() - last >= SUBMIT_EVERY):
                    last = self.loop.time()
                    blocks, got, held, aligned = buf, size, owned, direct
                    buf, size, owned = [], 0, []
                    await self._submit(index, offset, blocks, got, held, aligned)
                    offset += got
                    direct = offset % ALIGN == 0
                    piece.received += got
                    piece.pending = 0
        finally:
            if buf:
                await self._submit(index, offset, buf, size, owned, direct)
                piece.received += size
            piece.pending = 0
            if tap is not None:
                self.taps.pop(index, None)
                tap.close()
            resp.release()
        got = piece.received - began
        limit = piece.length
        if limit is not None and piece.received >= limit:
            return
        if resp.content_length is not None and got < resp.content_length:
            raise Transient(f"the body ended early ({got} of {resp.content_length} bytes)")
        if got == 0 and limit is not None:
            raise Transient("the server sent an empty body")


Reader = Callable[[], Awaitable[Chunk]]


def _tap_reader(tap: BodyTap, timeout: float | None) -> Reader:
    return functools.partial(tap.read, timeout)


def _aiohttp_reader(resp: aiohttp.ClientResponse) -> Reader:
    content = resp.content

    async def read() -> Chunk:
        while True:
            # one buffer as the socket delivered it (readany would join what is queued)
            chunk, end_of_http_chunk = await content.readchunk()
            if chunk or not end_of_http_chunk:
                return Chunk(chunk, None)
            # the end of one chunk of a chunked body, not of the body

    return read


def _disk_error(exc: BaseException, dest: Path) -> Exception:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"the volume filled up while writing {dest.name}",
            hint="free space on the volume; the .part file is kept and resumes",
            path=str(dest.parent),
        )
    if isinstance(exc, OSError):
        return DownloadError(f"cannot write {dest}: {exc.strerror}", hint="check the volume is writable")
    return exc if isinstance(exc, Exception) else DownloadError(str(exc))
