"""PresetService: the one facade the dashboard, the CLI and the start-up code use for presets.

It owns the catalog (shipped + the user's presets.yaml), the journal on the volume, the fetcher
(one shared aiohttp session) and the install tasks. Files a workflow names (`install_files`, a
"files" task) go through a second, guarded fetcher: allowed model hosts only, never an internal
address (guard.py; `url_guard` replaces the guard built from the settings, for tests). Tasks
run in the background on the event loop; their state and progress go to the event bus.
`close()` stops them without marking them cancelled, so the next `start()` resumes them from
their `.part` files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from ..catalog import Catalog, FileSpec, Preset, load_catalog
from ..catalog.entries import check_path, check_url
from ..errors import AppError, InvalidInput, PresetNotFound, TaskNotFound
from ..events import EventBus
from ..settings import Settings
from ..workspace import Workspace
from .fetch import Fetcher, FetchOptions, free_space
from .guard import GuardedResolver, UrlGuard
from .installer import Installer, LockOptions, check_space, error_dict, plan, remove_files
from .journal import UNFINISHED, Journal
from .presence import Presence
from .tasks import FileProgress, Reporter, Task, may_resume, new_task_id, process_identity

log = logging.getLogger(__name__)


GIB = 1024**3
JOURNAL_NAME = "journal.sqlite3"


class PresetService:
    def __init__(
        self,
        settings: Settings,
        workspace: Workspace,
        bus: EventBus,
        http: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], float] = time.time,
        free_space: Callable[[Path], int] = free_space,
        fetch_options: FetchOptions | None = None,
        lock_options: LockOptions | None = None,
        space_margin: int = 1 * GIB,
        progress_interval: float = 0.25,
        shipped_catalog: str | None = None,
        url_guard: UrlGuard | None = None,
    ) -> None:
        self._settings = settings
        self._options_from_settings = fetch_options is None
        self.ws = workspace
        self.bus = bus
        self.http = http
        self._own_http = False
        self.clock = clock
        self.free_space = free_space
        self.fetch_options = fetch_options or FetchOptions(connections=settings.download_connections)
        self.lock_options = lock_options or LockOptions()
        self.space_margin = space_margin
        self.progress_interval = progress_interval
        self.shipped_catalog = shipped_catalog
        self.catalog = Catalog()
        self._catalog_loaded = False  # start() loads it unless the caller already did
        self.journal: Journal | None = None
        self.presence = Presence(workspace, lambda: self.journal)
        self._tasks: dict[str, Task] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self._parallel_files = settings.download_parallel_files
        self._parallel = asyncio.Semaphore(settings.download_parallel_files)
        self._installer: Installer | None = None
        self._reporter = Reporter(bus, self._save, interval=progress_interval, wall=clock)
        self._owner = process_identity()
        self._url_guard = url_guard
        self._guarded_http: aiohttp.ClientSession | None = None
        self._guarded_fetcher: Fetcher | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    def apply_settings(self, value: Settings) -> None:
        """New effective settings (saved in the dashboard): the next download uses them."""
        self._settings = value
        if self._options_from_settings:
            self.fetch_options.connections = value.download_connections
        if value.download_parallel_files != self._parallel_files:
            self._parallel_files = value.download_parallel_files
            self._parallel = asyncio.Semaphore(value.download_parallel_files)
            if self._installer is not None:
                self._installer.parallel = self._parallel
        if self._guarded_fetcher is not None:
            self._guarded_fetcher.guard = self.url_guard

    @property
    def url_guard(self) -> UrlGuard:
        """Where a workflow's model URLs may download from (MODEL_HOSTS + Settings)."""
        return self._url_guard or UrlGuard(self.settings.model_hosts)

    def _workflow_fetcher(self) -> Fetcher:
        """The fetcher for URLs a workflow names: its own session resolves every host name
        through the guard, so no connection reaches an internal address."""
        if self._guarded_fetcher is None:
            resolver = GuardedResolver(lambda: self.url_guard)
            self._guarded_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
            self._guarded_fetcher = Fetcher(
                self._guarded_http,
                tokens=self._token,
                options=self.fetch_options,
                free_space=self.free_space,
                guard=self.url_guard,
            )
        return self._guarded_fetcher

    # ---- life cycle -------------------------------------------------------------------
    def load_catalog(self) -> Catalog:
        self.catalog = load_catalog(self.ws.user_presets, shipped=self.shipped_catalog)
        self._catalog_loaded = True
        for problem in self.catalog.problems:
            log.warning("preset catalog: %s", problem)
        return self.catalog

    def _token(self, host: str) -> str | None:
        secret = self.settings.token_for_host(host)
        return secret.get() if secret else None

    async def start(self) -> None:
        if not self._catalog_loaded:  # `start` loads it in its own phase; parse and warn once
            self.load_catalog()
        self.ws.cache.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.ws.cache / JOURNAL_NAME, clock=self.clock)
        if self.http is None:
            self.http = aiohttp.ClientSession()
            self._own_http = True
        reporter = self._reporter
        fetcher = Fetcher(
            self.http, tokens=self._token, options=self.fetch_options, free_space=self.free_space
        )
        self._installer = Installer(
            self.ws,
            self.journal,
            fetcher,
            reporter,
            parallel=self._parallel,
            free_space=self.free_space,
            space_margin=self.space_margin,
            lock_options=self.lock_options,
        )
        for row in reversed(self.journal.tasks(limit=50)):
            if row["state"] in UNFINISHED and not may_resume(row.get("owner", ""), self._owner):
                continue  # another live process (or another pod) is running it
            task = Task.from_row(row)
            self._tasks[task.id] = task
        for row in self.journal.tasks(UNFINISHED):
            if not may_resume(row.get("owner", ""), self._owner):
                continue  # another live process (or another pod) is running it
            task = self._tasks.get(row["id"]) or Task.from_row(row)
            self._tasks[task.id] = task
            try:
                files, licence = self._files_of(task)
            except AppError as exc:
                reporter.state(task, "failed", exc.to_dict())
                continue
            log.info("resuming install %s (%s)", task.id, task.preset_id)
            task.state = "queued"
            self._spawn(task, files, licence)

    async def close(self) -> None:
        self._closing = True
        running = list(self._running.values())
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._running.clear()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self._own_http and self.http is not None:
            await self.http.close()
            self.http = None
        if self._guarded_http is not None:
            await self._guarded_http.close()
            self._guarded_http = self._guarded_fetcher = None

    # ---- catalog ----------------------------------------------------------------------
    def get(self, preset_id: str) -> Preset:
        return self.catalog.get(preset_id)

    def _variant(self, preset: Preset, variant: str | None) -> str | None:
        if variant is None or variant == "":
            return preset.default_variant
        if variant not in preset.variants:
            names = ", ".join(preset.variants) or "none"
            raise InvalidInput(
                f"{preset.id} has no variant {variant!r}",
                hint=f"variants: {names}",
                variants=list(preset.variants),
            )
        return variant

    def installed_variant(self, preset_id: str) -> str | None:
        return self.presence.installed_variant(self.get(preset_id))

    def installed_state(self, preset_id: str) -> str:
        return self.presence.state(self.get(preset_id))

    def _view(self, preset: Preset) -> dict[str, Any]:
        active = self._active_for(preset.id)
        return self.presence.view(preset, active.id if active is not None else None)

    def describe(self, preset_id: str) -> dict[str, Any]:
        """One preset as the list shows it, with its installed state (PresetNotFound when unknown)."""
        return self._view(self.get(preset_id))

    def list_presets(self, category: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        out = []
        for preset in self.catalog.presets.values():
            if category and preset.category != category:
                continue
            if type and preset.type != type:
                continue
            out.append(self._view(preset))
        return out

    def owners_of(self, rel_path: str) -> list[str]:
        return self.catalog.owners_of(rel_path)

    def providers(self, folder: str, filename: str) -> list[str]:
        return self.catalog.providers(folder, filename)

    # ---- tasks ------------------------------------------------------------------------
    def task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(f"unknown task {task_id!r}", hint="list tasks with GET /api/presets/tasks")
        return task

    def tasks(self) -> list[Task]:
        return sorted(self._tasks.values(), key=lambda t: t.created, reverse=True)

    def _save(self, task: Task) -> None:
        if self.journal is not None:
            self.journal.save_task(task.to_row())

    def _files_of(self, task: Task) -> tuple[list[FileSpec], str | None]:
        if task.kind == "files":
            return [FileSpec(**s) for s in task.spec], None
        preset = self.get(task.preset_id)
        return preset.files_for(
            self._variant(preset, task.variant), include_optional=False
        ), preset.licence_url

    def _spawn(self, task: Task, files: list[FileSpec], licence: str | None) -> None:
        task.owner = self._owner
        self._tasks[task.id] = task
        job = asyncio.create_task(self._run(task, files, licence), name=f"install-{task.id}")
        self._running[task.id] = job
        job.add_done_callback(lambda _j: self._running.pop(task.id, None))

    async def _run(self, task: Task, files: list[FileSpec], licence: str | None) -> None:
        assert self._installer is not None
        rep = self._reporter
        try:
            fetcher = self._workflow_fetcher() if task.kind == "files" else None
            await self._installer.run(task, files, licence, fetcher=fetcher)
            rep.state(task, "verifying")
            missing = [f.path for f in files if not self.presence.file_present(f)]
            if missing:
                raise AppError(f"{len(missing)} file(s) missing after the install: {', '.join(missing)}")
            if task.kind == "preset" and self.journal is not None:
                self.journal.set_installed(task.preset_id, task.variant, [f.path for f in files])
            rep.state(task, "done")
        except asyncio.CancelledError:
            if not self._closing:
                rep.state(task, "cancelled")
            raise
        except AppError as exc:
            log.warning("install %s (%s) failed: %s", task.id, task.preset_id, exc)
            rep.state(task, "failed", exc.to_dict())
        except Exception as exc:
            log.exception("install %s (%s) failed", task.id, task.preset_id)
            rep.state(task, "failed", error_dict(exc))

    def _active_for(self, preset_id: str) -> Task | None:
        return next(
            (t for t in self._tasks.values() if t.preset_id == preset_id and t.id in self._running), None
        )

    async def install(
        self, preset_id: str, variant: str | None = None, *, include_optional: bool = False
    ) -> Task:
        preset = self.get(preset_id)
        chosen = self._variant(preset, variant)
        active = self._active_for(preset.id)
        if active is not None and active.variant == chosen:
            return active
        files = preset.files_for(chosen, include_optional=include_optional)
        return self._queue(preset.id, chosen, "preset", files, preset.licence_url)

    async def install_files(self, label: str, files: list[FileSpec]) -> Task:
        """Download files a workflow names: only from the allowed model hosts (UrlRefused)."""
        if not files:
            raise InvalidInput("no files to download")
        for spec in files:
            why = check_path(spec.path) or check_url(spec.url)
            if why:
                raise InvalidInput(f"{spec.path}: {why}")
            self.url_guard.check(spec.url, declared=True)
        return self._queue(label, None, "files", list(files), None)

    def _queue(
        self, label: str, variant: str | None, kind: str, files: list[FileSpec], licence: str | None
    ) -> Task:
        assert self.journal is not None, "PresetService.start() was not called"
        p = plan(self.ws, self.journal, files)
        check_space(self.ws, p.need_bytes, self.free_space, self.space_margin)
        now = self.clock()
        task = Task(id=new_task_id(), preset_id=label, variant=variant, kind=kind, created=now, updated=now)
        task.owner = self._owner
        task.files = [FileProgress(f.path, f.url, f.size) for f in files]
        task.bytes_total = sum(f.size or 0 for f in files)
        if kind == "files":
            task.spec = [
                {"path": f.path, "url": f.url, "size": f.size, "size_exact": f.size_exact, "sha256": f.sha256}
                for f in files
            ]
        self._reporter.state(task, "queued")
        self._spawn(task, files, licence)
        return task

    async def cancel(self, task_id: str) -> Task:
        task = self.task(task_id)
        job = self._running.get(task_id)
        if job is not None and not task.finished:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if not task.finished:
            self._reporter.state(task, "cancelled")
        return task

    async def wait(self, task_id: str) -> Task:
        """Wait for a task to finish (CLI and tests)."""
        job = self._running.get(task_id)
        if job is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(job)
        return self.task(task_id)

    async def uninstall(self, preset_id: str) -> list[str]:
        preset = self.get(preset_id)
        active = self._active_for(preset.id)
        if active is not None:
            await self.cancel(active.id)
        assert self.journal is not None
        keep: set[str] = set()
        for other in self.catalog.presets.values():
            if other.id != preset.id and self.installed_state(other.id) == "installed":
                keep |= {f.path for f in other.files_for(self.installed_variant(other.id))}
        doomed = [f.path for f in preset.all_files() if f.path not in keep]
        removed = remove_files(self.ws, self.journal, doomed)
        self.journal.remove_install(preset.id)
        log.info(
            "uninstalled %s: %d file(s) deleted, %d kept for other presets",
            preset.id,
            len(removed),
            len(keep),
        )
        return removed

    async def queue_startup(self, ids: Sequence[str]) -> list[Task]:
        out = []
        for pid in ids:
            try:
                out.append(await self.install(pid))
            except PresetNotFound as exc:
                log.warning("PRESET_DOWNLOAD: %s (%s); skipped", exc.message, exc.hint)
            except AppError as exc:
                log.warning("PRESET_DOWNLOAD: %s not queued: %s", pid, exc)
        return out
