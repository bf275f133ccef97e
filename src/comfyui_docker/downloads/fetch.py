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
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import ChecksumMismatch, DownloadError
from .guard import UrlGuard
from .http import (
    RangeIgnored,
    RangeNotSatisfiable,
    TokenLookup,
    Transient,
    content_range_start,
    content_range_total,
)
from .partfile import Piece, plan_range, tiles
from .transfer import Connection, FetchOptions, FreeSpace, Progress, Transfer, free_space

CUT_ALIGN = 64 * 1024  # a first stream is cut on this boundary
log = logging.getLogger(__name__)

__all__ = ["FetchOptions", "FetchResult", "Fetcher", "free_space"]


@dataclass
class FetchResult:
    path: Path
    size: int
    sha256: str
    network_bytes: int  # body bytes received over the network
    resumed_from: int  # bytes already on disk (from an earlier run) when this fetch started
    restarts: int  # times the download had to start over from zero
    connections: int
    direct_bytes: int = 0  # bytes written with O_DIRECT (the rest went through the page cache)

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
        guard: UrlGuard | None = None,
    ) -> None:
        """`guard`: the URLs are a workflow's (see guard.py); `session` must then resolve host
        names through `GuardedResolver`."""
        self.session = session
        self.guard = guard
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
        conn = Connection(self.session, self.tokens, self.options, self.sleep, self.free_space, self.guard)
        job = _Job(conn, url, dest, size, sha256, progress or (lambda n: None), licence_url)
        return await job.run()


class _Job(Transfer):
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
            pieces = _saved_pieces(state["pieces"])
            if pieces is not None and tiles(pieces, total):
                self.resumed_from = sum(p.filled for p in pieces)
                await self._io(self.part.open, pieces, total, {"url": self.url}, truncate=False)
                await self._resume(pieces, total)
                return
            log.warning("%s: its saved progress does not describe the file; starting over", self.part.path)
            await self._fresh()
            return
        existing = self.part.path.stat().st_size if self.part.path.exists() else 0
        if existing and not state and self.sha256:
            # A .part without progress notes is not one of ours (ours save their state before
            # the first byte): another tool's, taken as one contiguous prefix only because the
            # sha256 checks the guess. Without one it may have holes, and it starts over.
            pieces = [Piece(0, self.size, filled=existing, received=existing)]
            self.resumed_from = existing
            await self._io(self.part.open, pieces, self.size, {"url": self.url}, truncate=False)
            await self._resume(pieces, self.size)
            return
        await self._fresh()

    async def _fresh(self) -> None:
        """Ask for the whole file with `Range: bytes=0-`: the answer gives the size and whether
        ranges work, and its body is the first stream."""
        while True:
            try:
                resp = await self._open(0, None, use_final=False)
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
        pieces = [Piece(0, total)]
        try:
            self._check_space(total if total is not None else (self.size or 0))
            await self._io(self.part.open, pieces, total, {"url": self.url}, truncate=True)
        except BaseException:
            if resp is not None:
                resp.release()
            raise
        if resp is None:
            return
        splittable = (
            ranged and total is not None and self.opt.connections > 1 and total >= self.opt.min_multi_size
        )
        if splittable:
            await self._multi(pieces, first=resp)  # one stream, split if it turns out slow
        else:
            await self._single(pieces, total, first=resp)

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
                        with self.part.layout_lock:
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
        """Fetch `pieces` over several connections. With `first` (a new download: one piece,
        its stream already open) the stream runs alone until `_split` decides."""
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
                if first is not None:
                    lead = group.create_task(worker(first))
                    self.connections_used = 1
                    if not await self._split(pieces, lead):
                        return
                wanted = min(self.opt.connections, sum(1 for p in pieces if not p.complete))
                self.connections_used = max(self.connections_used, wanted)
                for _ in range(wanted - (1 if first is not None else 0)):
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

    async def _split(self, pieces: list[Piece], lead: asyncio.Task[None]) -> bool:
        """Watch the first stream for `split_after` seconds; if it is slower than `split_below`,
        end its piece a little ahead of what it has read and plan the rest as pieces for
        `connections` connections. True when split."""
        piece = pieces[0]
        assert piece.end is not None
        if self.opt.split_after > 0:  # (0: split at once, before the stream has read anything)
            began, t0 = self.reached(0, piece), self.loop.time()
            done, _ = await asyncio.wait({lead}, timeout=self.opt.split_after)
            if done:
                return False
            rate = (self.reached(0, piece) - began) / max(self.loop.time() - t0, 1e-6)
            if rate >= self.opt.split_below:
                return False  # fast enough alone: more connections would only cost CPU
        cut = -(-(self.reached(0, piece) + self.opt.split_ahead) // CUT_ALIGN) * CUT_ALIGN
        if piece.end - cut < self.opt.split_ahead:
            return False  # almost done: not worth new connections
        rest = plan_range(cut, piece.end, self.opt.piece_size, self.opt.connections)
        with self.part.layout_lock:  # a state saved meanwhile has all of it or none
            piece.end = cut  # the stream stops there; the pieces after it are up for grabs
            pieces.extend(rest)
        return True

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
        total = self.part.total
        if total is not None and size != total:  # never a file with a part missing
            problem = f"{size} of its {total} bytes were written"
        elif self.size is not None and size != self.size:
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
            direct_bytes=self.part.direct_bytes,
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


def _saved_pieces(rows: Any) -> list[Piece] | None:
    """The pieces of a saved state ([start, end, filled] each), None when it is malformed."""
    try:
        pieces = [
            Piece(int(s), None if e is None else int(e), filled=int(f), received=int(f)) for s, e, f in rows
        ]
    except (TypeError, ValueError):
        return None
    return pieces


def _first_error(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        non_cancel = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
        group = (non_cancel or list(group.exceptions))[0]
    return group
