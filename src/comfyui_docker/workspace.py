"""The persistent volume: its layout, idempotent creation, checks and disk usage.

Start-up work here is bounded by the number of folders in the layout, never by the number of
files already on the volume: only `stat`/`mkdir` on known paths, no recursive walk.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import WorkspaceError
from .model_paths import GENERATED_NAME, MODEL_FOLDERS, USER_NAME, write_generated

TOP_FOLDERS = ("models", "output", "uploads", "config", "cache", "logs", "custom_nodes")
#: ComfyUI's user folder (`--user-directory`); its `default/workflows` is what the editor saves.
USER_WORKFLOWS = ("user", "default", "workflows")
LOW_SPACE_BYTES = 10 * 1024**3


@dataclass(frozen=True)
class DiskUsage:
    total: int
    used: int
    free: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


@dataclass
class LayoutReport:
    created: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    disk: DiskUsage | None = None
    moved_workflows: list[tuple[Path, Path]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Workspace:
    """Paths on the volume, named once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def user(self) -> Path:
        return self.root / "user"

    @property
    def workflows(self) -> Path:
        """The one list of saved workflows: ComfyUI's own (what its editor saves and opens)."""
        return self.root.joinpath(*USER_WORKFLOWS)

    @property
    def legacy_workflows(self) -> Path:
        """Where the dashboard kept workflows before; moved into `workflows` at start (migrate.py)."""
        return self.root / "workflows"

    @property
    def custom_nodes(self) -> Path:
        return self.root / "custom_nodes"

    @property
    def python(self) -> Path:
        return self.root / "python"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def generated_yaml(self) -> Path:
        return self.config / GENERATED_NAME

    @property
    def user_yaml(self) -> Path:
        return self.config / USER_NAME

    @property
    def user_presets(self) -> Path:
        return self.config / "presets.yaml"

    @property
    def user_settings(self) -> Path:
        return self.config / "user_settings.yaml"

    def model_folder(self, name: str) -> Path:
        return self.models / name

    def required_dirs(self) -> list[Path]:
        dirs = [self.root / name for name in TOP_FOLDERS]
        dirs += [self.models / name for name in MODEL_FOLDERS]
        dirs += [self.root.joinpath(*USER_WORKFLOWS[:i]) for i in range(1, len(USER_WORKFLOWS) + 1)]
        return dirs

    def ensure(self) -> LayoutReport:
        """Create what is missing, touch nothing that exists, check writability and free space.

        Raises WorkspaceError when the volume cannot be used at all (missing parent, read-only,
        a file where a folder must be). Problems that do not stop the start are reported.
        """
        report = LayoutReport()
        root = self.root
        if root.exists() and not root.is_dir():
            raise WorkspaceError(
                f"{root} is a file, not a folder",
                hint="move it away or set WORKSPACE_ROOT to a folder",
            )
        if not root.exists():
            if not root.parent.is_dir():
                raise WorkspaceError(
                    f"{root.parent} does not exist, so {root} cannot be created",
                    hint="mount the volume or set WORKSPACE_ROOT to an existing folder",
                )
            try:
                root.mkdir()
            except FileExistsError:
                pass  # another runtime on this volume made it a moment ago; checked below
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot create {root}: {exc.strerror}",
                    hint="check the volume is mounted writable",
                ) from None
            else:
                report.created.append(root)
        if not root.is_dir():
            raise WorkspaceError(
                f"{root} is a file, not a folder", hint="move it away or set WORKSPACE_ROOT to a folder"
            )
        for path in self.required_dirs():
            try:
                path.mkdir()
                report.created.append(path)
            except FileExistsError:
                if not path.is_dir():
                    msg = f"{path} is a file where a folder must be"
                    if path.parent == root or path.parent == self.models:
                        raise WorkspaceError(
                            msg, hint=f"rename or move that file, then start again ({path})"
                        ) from None
                    report.problems.append(msg)
            except PermissionError:
                raise WorkspaceError(
                    f"cannot create {path}: permission denied",
                    hint="make the volume writable for this user",
                ) from None
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot create {path}: {exc.strerror}",
                    hint="check the volume is mounted writable",
                ) from None
        self.check_writable()
        report.disk = self.disk_usage()
        if report.disk.free < LOW_SPACE_BYTES:
            report.problems.append(
                f"only {report.disk.free / 1024**3:.1f} GiB free on {root}; model downloads may fail"
            )
        return report

    def check_writable(self) -> None:
        probe = self.config / f".write-probe-{uuid.uuid4().hex}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"{self.root} is not writable ({exc.strerror})", hint="mount the volume read-write"
            ) from None

    def disk_usage(self) -> DiskUsage:
        usage = shutil.disk_usage(self.root)
        return DiskUsage(total=usage.total, used=usage.used, free=usage.free)

    def write_model_paths(self) -> Path:
        return write_generated(self.config, self.models, self.custom_nodes)

    def init(self) -> LayoutReport:
        """Layout + generated yaml + the old workflows folder moved: what `init` and the start do."""
        from .workflows.saved import move_legacy

        report = self.ensure()
        self.write_model_paths()
        moved = move_legacy(self.legacy_workflows, self.workflows)
        report.moved_workflows = moved
        return report

    def folder_counts(self) -> dict[str, int]:
        """Files per model folder (one level of listing, for `doctor` and the UI; not on start)."""
        counts: dict[str, int] = {}
        for name in MODEL_FOLDERS:
            folder = self.models / name
            n = 0
            if folder.is_dir():
                for _dirpath, dirnames, filenames in os.walk(folder):
                    dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                    n += sum(1 for f in filenames if not f.startswith(".") and not f.endswith(".part"))
            counts[name] = n
        return counts
