"""Move model files from an old layout (e.g. /workspace/ComfyUI/models) into the volume layout.

Same file system: one rename per file (instant, no copy). Across file systems: copy to a
`.part` beside the target, compare size and sha256, rename, then delete the source. A target
that already exists with the same content counts as done (the source is removed); with a
different content it is reported and left alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .hashing import sha256_file
from .model_paths import canonical_folder, suggest_folder


@dataclass
class MigrationReport:
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    copied: list[tuple[Path, Path]] = field(default_factory=list)
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)
    conflicts: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".part"):
                continue
            yield Path(dirpath) / name


def _same(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


def plan_target(source_root: Path, file: Path, models_dir: Path) -> Path | None:
    rel = file.relative_to(source_root)
    if len(rel.parts) < 2:
        return None
    top = rel.parts[0]
    folder = canonical_folder(top) or (top if top in _passthrough() else None)
    if folder is None:
        guess = suggest_folder(top)
        folder = guess if guess and canonical_folder(guess) else None
    if folder is None:
        return None
    return models_dir / folder / Path(*rel.parts[1:])


def _passthrough() -> set[str]:
    from .model_paths import EXTRA_FOLDERS

    return set(EXTRA_FOLDERS)


def migrate(source_root: Path, models_dir: Path, *, dry_run: bool = False) -> MigrationReport:
    report = MigrationReport()
    for file in _files(source_root):
        target = plan_target(source_root, file, models_dir)
        if target is None:
            report.skipped.append((file, "not inside a known model folder"))
            continue
        if target.exists():
            if _same(file, target):
                report.duplicates.append((file, target))
                if not dry_run:
                    file.unlink()
            else:
                report.conflicts.append((file, target))
            continue
        same_fs = _same_filesystem(file, target)
        if dry_run:
            (report.moved if same_fs else report.copied).append((file, target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if same_fs:
            try:
                os.link(file, target)  # fails if the target appeared meanwhile: never overwrite
                file.unlink()
            except FileExistsError:
                report.conflicts.append((file, target))
                continue
            except OSError:  # a file system without hard links
                os.rename(file, target)
            report.moved.append((file, target))
        else:
            part = target.with_name(target.name + ".part")
            shutil.copyfile(file, part)
            with part.open("rb+") as fh:
                os.fsync(fh.fileno())
            if not _same(file, part):
                part.unlink()
                report.conflicts.append((file, target))
                continue
            os.replace(part, target)
            file.unlink()
            report.copied.append((file, target))
    return report


def _same_filesystem(src: Path, target: Path) -> bool:
    probe = target.parent
    while not probe.exists():
        probe = probe.parent
    return src.stat().st_dev == probe.stat().st_dev
