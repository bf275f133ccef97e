"""The `<name>.part` file of one download: pieces, inline sha256 of the contiguous prefix, flushes.

All methods run on one dedicated thread (the fetcher's writer executor), in order, so the
piece bookkeeping needs no locks. The file is split into pieces (one piece for a single-stream
download). Bytes are written with `pwrite`; a block that starts where the hash has reached is
hashed from memory, other blocks are hashed later by reading them back while they are still in
the page cache (never a second full read of the file). Blocks hashed from memory that the caller
vouches are aligned go through a second, `O_DIRECT` descriptor: no copy into the page cache and
nothing for `fdatasync` to write back. Only on local disk file systems (diskio.py's `DIRECT_IO_FS`), and the
page cache wherever the file system refuses it.

Every `flush_every` bytes, on the fdatasync thread while writing goes on: `fdatasync`, then the
progress (bytes per piece, as it was when the flush began) is saved beside the part as
`<name>.part.state`, then the hashed range is dropped from the page cache
(`POSIX_FADV_DONTNEED`). After a crash, resume starts from the saved state: only bytes that
reached the disk count. The state is saved once more before the part is opened, so a part of
ours always has one: a part without a state may have holes (pieces written ahead of the first
stream) and is never taken for a contiguous prefix unless the caller can check its sha256
(fetch.py). The layout (pieces, total) changes under `layout_lock`, so a saved state is never
half of a split.

The part and its state file are opened with `O_NOFOLLOW`: a symbolic link planted under either
name is never written through (the installer checks the folder itself, installer.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DownloadError
from .diskio import Buffer, direct_io_helps, pwrite_all

READ_BACK = 8 * 1024 * 1024
HASH_BACKLOG = 16  # blocks written but not yet hashed (bounds memory)
STATE_VERSION = 1


@dataclass
class Piece:
    start: int
    end: int | None  # exclusive; None: unknown total (single stream to EOF)
    filled: int = 0  # bytes written (writer thread)
    received: int = 0  # bytes handed to the writer (event loop)
    pending: int = 0  # bytes read from the socket, not yet handed to the writer (event loop)
    busy: bool = False

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start

    @property
    def complete(self) -> bool:
        return self.end is not None and self.filled >= self.end - self.start


MIN_PIECE = 1024 * 1024


def _open_no_link(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DownloadError(
                f"{path} is a symbolic link: a download never writes through one",
                hint="remove the link, then install again",
                path=str(path),
            ) from None
        raise


def tiles(pieces: list[Piece], total: int | None) -> bool:
    """Whether saved `pieces` describe a part that can be resumed: one stream from zero when the
    total is unknown, else pieces back to back from 0 to `total`, none filled past its end."""
    if not pieces or pieces[0].start != 0 or any(p.filled < 0 for p in pieces):
        return False
    if total is None:
        only = pieces[0]
        return len(pieces) == 1 and (only.end is None or only.filled <= only.end)
    at = 0
    for piece in pieces:
        if piece.start != at or piece.end is None or piece.end < piece.start:
            return False
        if piece.filled > piece.end - piece.start:
            return False
        at = piece.end
    return at == total


def plan_range(start: int, end: int, piece_size: int, connections: int) -> list[Piece]:
    """Pieces covering [start, end) for `connections` connections."""
    size = min(piece_size, max(MIN_PIECE, (end - start) // (connections * 4)))
    return [Piece(s, min(s + size, end)) for s in range(start, end, size)]


class PartFile:
    def __init__(self, path: Path, *, flush_every: int = 64 * 1024 * 1024, direct_io: bool = True) -> None:
        self.path = path
        self.state_path = path.with_name(path.name + ".state")
        self.flush_every = flush_every
        self.fd: int | None = None
        # a second descriptor with O_DIRECT for aligned blocks: no copy into the page cache and
        # no dirty pages for fdatasync to write back; None where the volume refuses it
        self.direct_io = direct_io and hasattr(os, "O_DIRECT") and direct_io_helps(path.parent)
        self.dfd: int | None = None
        self.direct_bytes = 0  # bytes written through O_DIRECT
        self.pieces: list[Piece] = []
        self.total: int | None = None
        self.meta: dict[str, Any] = {}
        self.hasher = hashlib.sha256()
        self.hashed = 0
        self._in_order = 0
        self._unflushed = 0
        self._dropped = 0
        self.read_back = 0  # bytes hashed by reading the file (not from memory)
        # hashing runs on its own thread, beside the writes: two cores, not one
        self._hash_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._hash_slots = threading.BoundedSemaphore(HASH_BACKLOG)
        self._hash_error: BaseException | None = None
        # offsets of blocks waiting on the hash thread: never read back what memory will hash
        self._hash_queued: set[int] = set()
        # fdatasync runs on its own thread too, so writing goes on while the disk catches up
        self._sync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fdatasync")
        self._syncing: Future[None] | None = None
        # held by whoever changes the pieces or the total (the event loop splitting a stream)
        # and by `_state()` on the writer thread: a snapshot is never half of a change
        self.layout_lock = threading.Lock()

    # ---- state ----------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        """The saved progress, if it exists and the part file is still there."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, OSError):
            return None
        if state.get("version") != STATE_VERSION or not self.path.exists():
            return None
        return dict(state)

    def _hash_wait(self) -> None:
        """Wait until every block handed to the hash thread is hashed."""
        self._hash_pool.submit(lambda: None).result()

    def _hash_idle(self) -> None:
        self._hash_wait()
        if self._hash_error is not None:
            raise self._hash_error

    def _hash_block(
        self, offset: int, blocks: list[Buffer], size: int, done: Callable[[], None] | None
    ) -> None:
        try:
            if offset == self.hashed:
                update = self.hasher.update
                for block in blocks:
                    update(block)  # hashlib releases the GIL for large buffers
                self.hashed += size
            self._hash_queued.discard(offset)
            self.advance_hash()
        except BaseException as exc:
            self._hash_error = exc
        finally:
            self._hash_queued.discard(offset)
            self._hash_slots.release()
            if done is not None:
                done()  # the blocks are free for reuse

    def open(self, pieces: list[Piece], total: int | None, meta: dict[str, Any], *, truncate: bool) -> None:
        """Open the part for `pieces` (`truncate`: from zero). Their state is saved first: a run
        killed at any moment after this leaves a part whose state says what to trust."""
        self._hash_idle()
        self.pieces, self.total, self.meta = pieces, total, meta
        self.save_state()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
        if truncate:
            flags |= os.O_TRUNC
        self.fd = _open_no_link(self.path, flags)
        if self.direct_io and self.dfd is None:
            try:
                self.dfd = os.open(self.path, os.O_WRONLY | os.O_DIRECT | os.O_NOFOLLOW)
            except OSError:
                self.direct_io = False  # not on this file system: page cache it is
        self.hasher = hashlib.sha256()
        self.hashed = 0
        self._in_order = 0  # end of the blocks queued to be hashed from memory, in order
        self._dropped = 0
        self._unflushed = 0
        if total is not None and len(pieces) > 1 and os.fstat(self.fd).st_size < total:
            os.ftruncate(self.fd, total)  # sparse: no bytes written twice
        self.advance_hash()

    def reset(self, pieces: list[Piece], total: int | None, meta: dict[str, Any]) -> None:
        """Start again from zero (200 instead of 206, changed upstream file...): the new state
        replaces the old one before the part is emptied."""
        self.close_fd()
        self.open(pieces, total, meta, truncate=True)

    def save_state(self, state: dict[str, Any] | None = None) -> None:
        state = state or self._state()
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        fd = _open_no_link(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(state))
        os.replace(tmp, self.state_path)

    def _state(self) -> dict[str, Any]:
        with self.layout_lock:
            return {
                "version": STATE_VERSION,
                "total": self.total,
                "pieces": [[p.start, p.end, p.filled] for p in self.pieces],
                **self.meta,
            }

    # ---- writing --------------------------------------------------------------------
    def write(
        self,
        index: int,
        offset: int,
        blocks: Buffer | list[Buffer],
        done: Callable[[], None] | None = None,
        *,
        direct: bool = False,
    ) -> None:
        """Write `blocks` (one buffer or several, back to back) at `offset`, with `pwritev`.

        `done` is called (on the hash thread) once the buffers are no longer needed. `direct`:
        the caller vouches that `offset`, every buffer's address and every length are
        multiples of 4 KiB, so the write may bypass the page cache."""
        assert self.fd is not None
        if isinstance(blocks, bytes | bytearray | memoryview):
            blocks, direct = [bytes(blocks)], False
        size = sum(len(b) for b in blocks)
        try:
            if self._hash_error is not None:
                raise self._hash_error
            self._hash_slots.acquire()
        except BaseException:
            if done is not None:
                done()
            raise
        self._hash_queued.add(offset)  # before `filled` moves, so the hash thread waits for it
        # A block right after the hashed prefix (or after blocks queued to be hashed from
        # memory) is hashed from memory: it may skip the page cache. Any other block is read
        # back for the hash later, so it stays in the page cache for that.
        in_order = offset == max(self._in_order, self.hashed)
        if in_order:
            self._in_order = offset + size
        try:
            self._pwrite(blocks, offset, direct and in_order)
        except BaseException:
            self._hash_queued.discard(offset)
            self._hash_slots.release()
            if done is not None:
                done()
            raise
        piece = self.pieces[index]
        piece.filled = max(piece.filled, offset + size - piece.start)
        self._hash_pool.submit(self._hash_block, offset, blocks, size, done)
        self._unflushed += size
        if self._unflushed >= self.flush_every:
            self._flush_behind()

    def _pwrite(self, blocks: list[Buffer], offset: int, direct: bool) -> None:
        assert self.fd is not None
        if direct and self.dfd is not None:
            try:
                pwrite_all(self.dfd, blocks, offset)
                self.direct_bytes += sum(len(b) for b in blocks)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._close_direct()  # the volume takes O_DIRECT opens but not the writes
                self.direct_io = False
        pwrite_all(self.fd, blocks, offset)

    def _close_direct(self) -> None:
        if self.dfd is not None:
            os.close(self.dfd)
            self.dfd = None

    def advance_hash(self) -> None:
        """Hash what is on disk right after the hashed prefix (from the page cache)."""
        assert self.fd is not None
        for piece in self.pieces:
            if piece.end is not None and self.hashed >= piece.end:
                continue
            if self.hashed < piece.start:
                return
            avail = piece.start + piece.filled - self.hashed
            while avail > 0:
                if self.hashed in self._hash_queued:
                    return  # the hash thread will hash this block from memory
                chunk = os.pread(self.fd, min(avail, READ_BACK), self.hashed)
                if not chunk:
                    return
                self.hasher.update(chunk)
                self.hashed += len(chunk)
                self.read_back += len(chunk)
                avail -= len(chunk)
            if not piece.complete:
                return

    def _flush_behind(self) -> None:
        """Start a flush on the fdatasync thread and go on writing. The progress it saves is
        what had been written when it started; one flush at a time (a write past the mark
        while one runs leaves the next to a later write)."""
        if self._syncing is not None:
            if not self._syncing.done():
                return
            self._sync_wait()  # raises what the last flush met
        assert self.fd is not None
        self._unflushed = 0
        self._syncing = self._sync_pool.submit(self._sync, self.fd, self._state(), self.hashed)

    def _sync(self, fd: int, state: dict[str, Any], hashed: int) -> None:
        os.fdatasync(fd)
        self.save_state(state)
        if hasattr(os, "posix_fadvise") and hashed > self._dropped:
            # written, hashed and on the disk: no reason to keep it in the page cache
            os.posix_fadvise(fd, self._dropped, hashed - self._dropped, os.POSIX_FADV_DONTNEED)
            self._dropped = hashed

    def _sync_wait(self) -> None:
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            syncing.result()

    def flush(self) -> None:
        """Everything written so far durable and its progress saved, now."""
        self._sync_wait()
        if self.fd is None:
            return
        self._unflushed = 0
        self._sync(self.fd, self._state(), self.hashed)

    def finish(self) -> tuple[int, str]:
        """Flush and fsync; (bytes hashed, hex digest)."""
        assert self.fd is not None
        self._hash_idle()
        self._sync_wait()
        self.advance_hash()
        os.fsync(self.fd)
        self._unflushed = 0
        return self.hashed, self.hasher.hexdigest()

    def close_fd(self) -> None:
        self._hash_wait()  # the hash thread may still be reading the file
        with contextlib.suppress(OSError):
            self._sync_wait()  # and the fdatasync thread syncing it (its error is moot now)
        self._close_direct()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self, *, save: bool = True) -> None:
        """Make what was written durable and remember it (cancel, error, shutdown)."""
        try:
            if save and self.fd is not None:
                self.flush()
        finally:
            self.close_fd()
            self._hash_pool.shutdown(wait=True)
            self._sync_pool.shutdown(wait=True)

    def discard(self) -> None:
        self.close_fd()
        self.path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
