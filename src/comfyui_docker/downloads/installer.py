"""Install a set of files onto the volume: plan, check space, lock, fetch, record.

Planning is stat-only (no hashing on the request path): a file is *present* when the journal
has a verified record of it whose size and mtime match the file on disk. A file that is there
without a record (copied by hand, an older image) is hashed once on the worker path and adopted
when it matches what is known (catalog sha256, exact size, or the URL's first-download hash).

Each file is fetched under its volume lock, so two pods installing the same file end with one
download: the second waits, then finds the file present. Files run `parallel` at a time
(shared by every task of the service).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..catalog.schema import FileSpec
from ..errors import ChecksumMismatch, DiskFull, DownloadError, InvalidInput
from ..workspace import Workspace
from .fetch import Fetcher
from .journal import Journal
from .locks import LockLost, VolumeLock
from .tasks import FileProgress, Reporter, Task

log = logging.getLogger(__name__)
GB = 1e9


@dataclass
class LockOptions:
    stale_after: float = 30.0
    heartbeat: float = 5.0
    poll: float = 0.5


@dataclass
class Plan:
    present: list[FileSpec]
    missing: list[FileSpec]
    need_bytes: int  # bytes still to download (catalog sizes, minus .part progress)


def file_is_present(workspace: Workspace, journal: Journal, spec: FileSpec) -> bool:
    dest = workspace.models / spec.path
    try:
        st = dest.stat()
    except FileNotFoundError:
        return False
    rec = journal.file(spec.path)
    if rec is None or rec.size != st.st_size or rec.mtime_ns != st.st_mtime_ns:
        return False
    if spec.sha256 and rec.sha256 != spec.sha256:
        return False
    return not (spec.size_exact and spec.size != st.st_size)


def plan(workspace: Workspace, journal: Journal, files: list[FileSpec]) -> Plan:
    present, missing, need = [], [], 0
    for spec in files:
        if file_is_present(workspace, journal, spec):
            present.append(spec)
            continue
        missing.append(spec)
        part = workspace.models / (spec.path + ".part")
        have = part.stat().st_size if part.exists() else 0
        need += max((spec.size or 0) - have, 0)
    return Plan(present, missing, need)


def check_space(workspace: Workspace, need: int, free_space: Callable[[Path], int], margin: int) -> None:
    workspace.models.mkdir(parents=True, exist_ok=True)
    free = free_space(workspace.models)
    if free < need + margin:
        raise DiskFull(
            f"not enough free space: {need / GB:.1f} GB to download, {free / GB:.1f} GB free "
            f"(keeping {margin / GB:.1f} GB spare)",
            hint="free space on the volume, pick a smaller variant, or use a bigger volume",
            needed=need,
            free=free,
            margin=margin,
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


class Installer:
    def __init__(
        self,
        workspace: Workspace,
        journal: Journal,
        fetcher: Fetcher,
        reporter: Reporter,
        *,
        parallel: asyncio.Semaphore,
        free_space: Callable[[Path], int],
        space_margin: int,
        lock_options: LockOptions | None = None,
    ) -> None:
        self.ws = workspace
        self.journal = journal
        self.fetcher = fetcher
        self.reporter = reporter
        self.parallel = parallel
        self.free_space = free_space
        self.space_margin = space_margin
        self.lock_options = lock_options or LockOptions()

    def lock_for(self, spec: FileSpec) -> VolumeLock:
        name = spec.path.replace("/", "__") + ".lock"
        o = self.lock_options
        return VolumeLock(
            self.ws.cache / "locks" / name, stale_after=o.stale_after, heartbeat=o.heartbeat, poll=o.poll
        )

    async def run(
        self,
        task: Task,
        files: list[FileSpec],
        licence_url: str | None = None,
        *,
        fetcher: Fetcher | None = None,
    ) -> None:
        """Bring every file of `files` onto the volume; raises the first failure. `fetcher`:
        another fetcher for these files (the guarded one, for a workflow's URLs)."""
        via = fetcher or self.fetcher
        p = plan(self.ws, self.journal, files)
        task.files = [FileProgress(f.path, f.url, f.size) for f in files]
        by_path = {fp.path: fp for fp in task.files}
        task.bytes_total = sum(f.size or 0 for f in files)
        task.bytes_done = 0
        for spec in p.present:
            fp = by_path[spec.path]
            fp.state, fp.done = "present", spec.size or 0
            task.bytes_done += fp.done
        check_space(self.ws, p.need_bytes, self.free_space, self.space_margin)
        self.reporter.state(task, "downloading")
        jobs = [
            asyncio.create_task(self._one(task, spec, by_path[spec.path], licence_url, via))
            for spec in p.missing
        ]
        try:
            for job in asyncio.as_completed(jobs):
                await job
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _one(
        self, task: Task, spec: FileSpec, fp: FileProgress, licence_url: str | None, fetcher: Fetcher
    ) -> None:
        async with self.parallel:
            lock = self.lock_for(spec)
            await lock.acquire()
            try:
                if lock.waited and file_is_present(self.ws, self.journal, spec):
                    self._mark_present(task, spec, fp)  # another pod or task just installed it
                    return
                if await self._adopt(spec):
                    self._mark_present(task, spec, fp)
                    return
                await self._download(task, spec, fp, lock, licence_url, fetcher)
            finally:
                await lock.release()

    def _mark_present(self, task: Task, spec: FileSpec, fp: FileProgress) -> None:
        size = (self.ws.models / spec.path).stat().st_size
        task.bytes_done += size - fp.done
        fp.done, fp.state = size, "present"
        if fp.size is None or not spec.size_exact:
            task.bytes_total += size - (fp.size or 0)
            fp.size = size

    async def _adopt(self, spec: FileSpec) -> bool:
        """A file already at the target without a journal record: keep it if it checks out."""
        dest = self.ws.models / spec.path
        if not dest.is_file():
            return False
        st = dest.stat()
        rec = self.journal.file(spec.path)
        same = rec is not None and rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns
        if same and rec is not None and (not spec.sha256 or spec.sha256 == rec.sha256):
            return True
        if spec.size_exact and st.st_size != spec.size:
            return False
        known = self.journal.url_hash(spec.url)
        expected = spec.sha256 or (known[1] if known else None)
        digest = await asyncio.to_thread(sha256_file, dest)
        if expected is not None and digest != expected:
            log.warning("%s exists but its sha256 differs; downloading it again", spec.path)
            return False
        self.journal.record_file(spec.path, spec.url, st.st_size, digest, st.st_mtime_ns)
        return True

    def _target(self, spec: FileSpec) -> Path:
        """Where `spec` is written, proven to stay under models/ even through symbolic links: a
        folder that links out of the volume's models folder (models/loras -> /etc) is refused
        before anything is created in it."""
        models = os.path.realpath(self.ws.models)
        dest = self.ws.models / spec.path
        existing = dest.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        for folder in (existing, dest.parent):
            real = os.path.realpath(folder)
            if real != models and not real.startswith(models + os.sep):
                raise InvalidInput(
                    f"models/{spec.path}: {folder} leads to {real}, outside the models folder",
                    hint="downloads never write through a link out of the volume; remove the link",
                    path=spec.path,
                )
            if folder == existing:
                dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    async def _download(
        self,
        task: Task,
        spec: FileSpec,
        fp: FileProgress,
        lock: VolumeLock,
        licence_url: str | None,
        fetcher: Fetcher,
    ) -> None:
        dest = self._target(spec)
        known = self.journal.url_hash(spec.url)
        expected_sha = spec.sha256 or (known[1] if known else None)
        expected_size = spec.exact_size if spec.size_exact else (known[0] if known else None)
        fp.state = "downloading"

        def progress(n: int) -> None:
            self.reporter.progress(task, fp, n)

        fetch = asyncio.create_task(
            fetcher.fetch(
                spec.url,
                dest,
                size=expected_size,
                sha256=expected_sha,
                progress=progress,
                licence_url=licence_url,
            )
        )
        lost = asyncio.create_task(lock.lost.wait())
        try:
            await asyncio.wait({fetch, lost}, return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
                raise LockLost(f"another process took over the lock of {spec.path}")
            try:
                result = fetch.result()
            except ChecksumMismatch:
                fp.state = "failed"
                raise
        finally:
            lost.cancel()
            if not fetch.done():
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
        if fp.size is None or not spec.size_exact:
            task.bytes_total += result.size - (fp.size or 0)
            fp.size = result.size
        # bytes already on disk from an earlier run count as done too
        task.bytes_done += result.size - fp.done
        fp.done = result.size
        fp.state = "done"
        st = dest.stat()
        self.journal.record_url_hash(spec.url, result.size, result.sha256)
        self.journal.record_file(spec.path, spec.url, result.size, result.sha256, st.st_mtime_ns)
        if result.refetched:
            log.info("%s: %d bytes fetched twice (resume after a cut)", spec.path, result.refetched)


def error_dict(exc: BaseException) -> dict[str, object]:
    if isinstance(exc, DownloadError | DiskFull):
        return exc.to_dict()
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        out = to_dict()
        if isinstance(out, dict):
            return out
    return {"code": "download_failed", "message": str(exc) or type(exc).__name__}


def remove_files(workspace: Workspace, journal: Journal, paths: list[str]) -> list[str]:
    removed = []
    for rel in paths:
        dest = workspace.models / rel
        for candidate in (
            dest,
            dest.with_name(dest.name + ".part"),
            dest.with_name(dest.name + ".part.state"),
        ):
            try:
                candidate.unlink()
                if candidate == dest:
                    removed.append(rel)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot delete %s: %s", candidate, exc)
        journal.forget_file(rel)
    return removed
