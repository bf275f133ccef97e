"""Download one URL to one file: resume, several connections, inline sha256, verify, then rename.

    fetch(url, dest) ->  <dest>.part (+ .part.state)  ->  size and sha256 checked  ->  fsync
                     ->  os.replace(part, dest)       ->  FetchResult

Nothing appears under `dest` before it is verified. On restart the `.part` is resumed with
`Range` (the prefix already on disk is hashed first); a 200 answer to a Range request starts
over, a 416 means the part is complete or stale. When the server supports ranges and the file
is big enough, pieces are fetched over `connections` connections at once (as `aria2c -x N`);
the sha256 still covers the file in order without a second full read (see partfile.py).

Connection errors, timeouts, short bodies, 5xx and 429 are retried with exponential backoff and
jitter (429/503 honour Retry-After); the failure budget resets whenever bytes arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import ChecksumMismatch, DiskFull, DownloadError
from .http import (
    RangeIgnored,
    RangeNotSatisfiable,
    RetryPolicy,
    TokenLookup,
    Transient,
    content_range_start,
    content_range_total,
    open_response,
)
from .partfile import PartFile, Piece, plan_pieces

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
    probe_size: int = 1 * MIB  # the first request's range: learns size and Range support
    min_multi_size: int = 16 * MIB
    flush_every: int = 64 * MIB
    max_inflight_blocks: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: aiohttp.ClientTimeout = field(
        default_factory=lambda: aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    )
    space_margin: int = 512 * MIB


@dataclass
class FetchResult:
    path: Path
    size: int
    sha256: str
    network_bytes: int  # body bytes received over the network
    resumed_from: int  # bytes already on disk (from an earlier run) when this fetch started
    restarts: int  # times the download had to start over from zero
    connections: int

    @property
    def refetched(self) -> int:
        """Bytes fetched more than once (network bytes beyond what the file still needed)."""
        return max(0, self.network_bytes - (self.size - self.resumed_from))


class Fetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        tokens: TokenLookup = lambda host: None,
        options: FetchOptions | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        free_space: FreeSpace = free_space,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.options = options or FetchOptions()
        self.sleep = sleep
        self.free_space = free_space

    async def fetch(
        self,
        url: str,
        dest: Path,
        *,
        size: int | None = None,
        sha256: str | None = None,
        progress: Progress | None = None,
        licence_url: str | None = None,
    ) -> FetchResult:
        job = _Job(self, url, dest, size, sha256, progress or (lambda n: None), licence_url)
        return await job.run()


class _Job:
    def __init__(
        self,
        fetcher: Fetcher,
        url: str,
        dest: Path,
        size: int | None,
        sha256: str | None,
        progress: Progress,
        licence_url: str | None,
    ) -> None:
        self.f = fetcher
        self.opt = fetcher.options
        self.url = url
        self.final_url = url
        self.dest = dest
        self.size = size
        self.sha256 = sha256.lower() if sha256 else None
        self.progress = progress
        self.licence_url = licence_url
        self.part = PartFile(dest.with_name(dest.name + ".part"), flush_every=self.opt.flush_every)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{dest.name[:20]}")
        self.loop = asyncio.get_running_loop()
        self.inflight = asyncio.Semaphore(self.opt.max_inflight_blocks)
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

    async def _submit(self, index: int, offset: int, data: bytes) -> None:
        self._check_pending()
        await self.inflight.acquire()
        fut = self.loop.run_in_executor(self.executor, self.part.write, index, offset, data)
        fut.add_done_callback(lambda _f: self.inflight.release())
        self.pending.add(fut)
        self.network += len(data)
        self.failures = 0  # bytes arrived: the retry budget starts again
        self.progress(len(data))

    def _check_space(self, needed: int) -> None:
        if self.space_checked:
            return
        self.space_checked = True
        free = self.f.free_space(self.dest.parent)
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
        await self.f.sleep(self.opt.retry.delay(self.failures, exc.retry_after))

    async def _open(self, start: int | None, end: int | None, *, use_final: bool) -> aiohttp.ClientResponse:
        url = self.final_url if use_final else self.url
        resp, final = await open_response(
            self.f.session,
            url,
            tokens=self.f.tokens,
            start=start,
            end=end,
            timeout=self.opt.timeout,
            licence_url=self.licence_url,
            original_url=self.url,
        )
        if not use_final:
            self.final_url = final
        return resp

    async def _stream(self, resp: aiohttp.ClientResponse, index: int, piece: Piece) -> None:
        """Copy the body of `resp` into `piece` from `piece.received` on."""
        buf: list[bytes] = []
        size = 0
        offset = piece.start + piece.received
        limit = piece.length
        began = piece.received
        last = self.loop.time()
        try:
            while True:
                if limit is not None and piece.received + size >= limit:
                    break
                try:
                    chunk = await resp.content.readany()
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    raise Transient(f"connection lost: {exc or type(exc).__name__}") from None
                if not chunk:
                    break
                if limit is not None and piece.received + size + len(chunk) > limit:
                    chunk = chunk[: limit - piece.received - size]
                buf.append(chunk)
                size += len(chunk)
                if size >= BLOCK or (size >= SMALL_BLOCK and self.loop.time() - last >= SUBMIT_EVERY):
                    last = self.loop.time()
                    data = b"".join(buf)
                    buf, size = [], 0
                    await self._submit(index, offset, data)
                    offset += len(data)
                    piece.received += len(data)
        finally:
            if buf:
                data = b"".join(buf)
                await self._submit(index, offset, data)
                piece.received += len(data)
            resp.release()
        got = piece.received - began
        if limit is not None and piece.received >= limit:
            return
        if resp.content_length is not None and got < resp.content_length:
            raise Transient(f"the body ended early ({got} of {resp.content_length} bytes)")
        if got == 0 and limit is not None:
            raise Transient("the server sent an empty body")

    # ---- the download ---------------------------------------------------------------
    async def run(self) -> FetchResult:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                await self._download()
                return await self._verify_and_commit()
            finally:
                with contextlib.suppress(Exception):
                    await self._drain()
                await asyncio.shield(self._io(self.part.close))
        finally:
            self.executor.shutdown(wait=False)

    async def _download(self) -> None:
        state = await self._io(self.part.load_state)
        if state and state.get("url") == self.url and state.get("pieces"):
            total = state.get("total")
            pieces = [Piece(s, e, filled=f, received=f) for s, e, f in state["pieces"]]
            self.resumed_from = sum(p.filled for p in pieces)
            await self._io(self.part.open, pieces, total, {"url": self.url}, truncate=False)
            await self._resume(pieces, total)
            return
        existing = self.part.path.stat().st_size if self.part.path.exists() else 0
        if existing and not state:
            # a .part without progress notes (an older run): trust it as one contiguous prefix
            pieces = [Piece(0, self.size, filled=existing, received=existing)]
            self.resumed_from = existing
            await self._io(self.part.open, pieces, self.size, {"url": self.url}, truncate=False)
            await self._resume(pieces, self.size)
            return
        await self._fresh()

    async def _fresh(self) -> None:
        """Probe with `Range: bytes=0-` to learn the size and whether ranges work."""
        while True:
            try:
                # a first piece only: enough to learn the size and whether ranges work
                probe_end = self.opt.probe_size - 1 if self.opt.connections > 1 else None
                resp = await self._open(0, probe_end, use_final=False)
            except Transient as exc:
                await self._failed(exc)
                continue
            except RangeNotSatisfiable:
                # an empty file answers 416 to bytes=0-
                resp = None
            break
        if resp is None:
            total: int | None = 0
            ranged = False
        else:
            ranged = resp.status == 206
            total = content_range_total(resp) if ranged else resp.content_length
        try:
            self._check_space(total if total is not None else (self.size or 0))
            multi = (
                ranged and total is not None and self.opt.connections > 1 and total >= self.opt.min_multi_size
            )
            first = min(self.opt.probe_size, total or 0) if multi else 0
            pieces = plan_pieces(total, self.opt.piece_size, self.opt.connections if multi else 1, first)
            await self._io(self.part.open, pieces, total, {"url": self.url}, truncate=True)
        except BaseException:
            if resp is not None:
                resp.release()
            raise
        if resp is None:
            return
        if len(pieces) == 1:
            await self._single(pieces, total, first=resp)
        else:
            await self._multi(pieces, first=resp)

    async def _resume(self, pieces: list[Piece], total: int | None) -> None:
        remaining = (total - sum(p.filled for p in pieces)) if total is not None else 0
        self._check_space(remaining)
        self.progress(self.resumed_from)  # bytes already on disk count as done
        if len(pieces) == 1:
            await self._single(pieces, total, first=None)
        else:
            await self._multi(pieces, first=None)

    async def _restart(self, total: int | None) -> list[Piece]:
        self.restarts += 1
        pieces = [Piece(0, total)]
        await self._drain()
        self.progress(-sum(p.received for p in self.part.pieces))
        await self._io(self.part.reset, pieces, total, {"url": self.url})
        return pieces

    async def _single(
        self, pieces: list[Piece], total: int | None, first: aiohttp.ClientResponse | None
    ) -> None:
        piece = pieces[0]
        resp = first
        while True:
            if piece.end is not None and piece.received >= piece.end:
                return
            try:
                if resp is None:
                    start = piece.received if piece.received else None
                    try:
                        resp = await self._open(start, None, use_final=False)
                    except RangeNotSatisfiable:
                        if total is not None and piece.received == total:
                            return
                        pieces = await self._restart(total)
                        piece = pieces[0]
                        continue
                    if piece.received and resp.status == 200:
                        resp.release()
                        resp = None
                        pieces = await self._restart(total)
                        piece = pieces[0]
                        continue
                    if resp.status == 206 and content_range_start(resp) not in (None, piece.received):
                        resp.release()
                        raise Transient("the server sent a different range than asked")
                    new_total = content_range_total(resp) if resp.status == 206 else resp.content_length
                    if total is None and new_total is not None and piece.received == 0:
                        total = new_total
                        piece.end = total
                        self.part.total = total
                await self._stream(resp, 0, piece)
                resp = None
                if piece.end is None:
                    return  # no length announced: the body ended cleanly
            except Transient as exc:
                resp = None
                await self._failed(exc)

    async def _multi(self, pieces: list[Piece], first: aiohttp.ClientResponse | None) -> None:
        self.connections_used = min(self.opt.connections, sum(1 for p in pieces if not p.complete))

        taken: list[aiohttp.ClientResponse] = []

        async def worker(initial: aiohttp.ClientResponse | None) -> None:
            resp = initial
            if resp is not None:
                taken.append(resp)
                pieces[0].busy = True
                await self._piece(pieces, 0, resp)
            while True:
                index = next(
                    (i for i, p in enumerate(pieces) if not p.busy and p.received < (p.length or 0)), None
                )
                if index is None:
                    return
                pieces[index].busy = True
                await self._piece(pieces, index, None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(worker(first))
                for _ in range(self.connections_used - 1):
                    group.create_task(worker(None))
        except* RangeIgnored:
            # the server stopped honouring ranges: fall back to one stream from zero
            total = pieces[-1].end
            fresh = await self._restart(total)
            await self._single(fresh, total, first=None)
        except* BaseException as group_exc:
            raise _first_error(group_exc) from None
        finally:
            if first is not None and not taken:
                first.release()  # the group was cancelled before its first worker ran

    async def _piece(self, pieces: list[Piece], index: int, resp: aiohttp.ClientResponse | None) -> None:
        piece = pieces[index]
        assert piece.end is not None
        use_final = True
        while piece.received < piece.end - piece.start:
            try:
                if resp is None:
                    start = piece.start + piece.received
                    try:
                        resp = await self._open(start, piece.end - 1, use_final=use_final)
                    except DownloadError:
                        if use_final and self.final_url != self.url:
                            use_final = False  # a signed CDN URL may have expired: resolve again
                            continue
                        raise
                    if resp.status == 200:
                        resp.release()
                        raise RangeIgnored()
                    if content_range_start(resp) != start:
                        resp.release()
                        raise Transient("the server sent a different range than asked")
                await self._stream(resp, index, piece)
                resp = None
            except Transient as exc:
                resp = None
                await self._failed(exc)
            except RangeNotSatisfiable:
                raise Transient("416 for a range inside the file") from None

    async def _verify_and_commit(self) -> FetchResult:
        await self._drain()
        size, digest = await self._io(self.part.finish)
        problem = None
        if self.size is not None and size != self.size:
            problem = f"size is {size} bytes, expected {self.size}"
        elif self.sha256 and digest != self.sha256:
            problem = f"sha256 is {digest}, expected {self.sha256}"
        if problem:
            await self._io(self.part.discard)
            raise ChecksumMismatch(
                f"{self.dest.name}: {problem}; the download was deleted and nothing was installed",
                hint="install again; if it keeps failing the upstream file changed or is corrupt",
                url=self.url,
                sha256=digest,
                size=size,
            )
        await self._io(self._commit)
        return FetchResult(
            path=self.dest,
            size=size,
            sha256=digest,
            network_bytes=self.network,
            resumed_from=self.resumed_from,
            restarts=self.restarts,
            connections=self.connections_used,
        )

    def _commit(self) -> None:
        self.part.close_fd()
        os.replace(self.part.path, self.dest)
        self.part.state_path.unlink(missing_ok=True)
        fd = os.open(self.dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def _first_error(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        non_cancel = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
        group = (non_cancel or list(group.exceptions))[0]
    return group
