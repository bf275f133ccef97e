"""The saved workflows: ComfyUI's own `user/default/workflows` on the volume, subfolders included.

One list for both sides: what ComfyUI's editor saves (`POST /userdata/workflows%2F...`) is what the
dashboard lists and runs, and what the dashboard saves opens in ComfyUI's workflow browser.

A name is the workflow's path below that folder with `/` between folders (`portraits/sdxl.json`).
Each part is a plain name (letters, digits, space, `_-.()[]+,&@'`), never hidden, never `..`; the
last ends in `.json` (added when missing). A name that leads outside the folder, or a link that
leads outside the volume, is refused.

`move_legacy` moves the dashboard's old folder (`/workspace/workflows`) into this one: moved, not
copied (a rename on one volume); a name that exists on both sides keeps both, the moved one with a
suffix (`flow (1).json`); the old folder is removed once empty, so the next start finds nothing.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound

PART_RE = re.compile(r"^[\w][\w \-.()\[\]+,&@']{0,150}$")
MAX_DEPTH = 8


def check_name(name: str) -> str:
    """A safe workflow name (`.json` added when missing), folders joined with `/`; InvalidInput else."""
    if not isinstance(name, str) or "\x00" in name:
        raise InvalidInput("a workflow name cannot contain NUL bytes")
    clean = name.strip()
    if not clean.lower().endswith(".json"):
        clean += ".json"
    parts = clean.split("/")
    if (
        "\\" in clean
        or len(parts) > MAX_DEPTH
        or any(p in ("", ".", "..") or p.startswith(".") or ".." in p or not PART_RE.match(p) for p in parts)
    ):
        raise InvalidInput(
            f"'{name[:120]}' is not a valid workflow name",
            hint="letters, digits, spaces and - _ . ( ) in each part, '/' between folders; ends in .json",
        )
    return clean


def _inside(path: Path, root: Path) -> bool:
    """`path` (links resolved) is `root` or below it."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class SavedWorkflows:
    folder: Path  # /workspace/user/default/workflows
    volume: Path  # /workspace: links may lead anywhere on it, never off it

    def path(self, name: str, *, must_exist: bool = True) -> Path:
        clean = check_name(name)
        path = self.folder.joinpath(*clean.split("/"))
        if not _inside(path.parent, self.folder):
            raise InvalidInput(f"'{name}' leads outside the workflows folder")
        if path.is_symlink() and not _inside(path, self.volume):
            raise InvalidInput(f"'{clean}' is a link that leads outside the volume")
        if must_exist and not path.is_file():
            raise NotFound(f"no workflow named '{clean}'", hint="see GET /api/workflows", name=clean)
        return path

    def name_of(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def info(self, path: Path) -> dict[str, Any]:
        st = path.stat()
        return {"name": self.name_of(path), "size": st.st_size, "mtime": int(st.st_mtime)}

    def list(self) -> list[dict[str, Any]]:
        """Every `.json` below the folder (hidden files and folders skipped), sorted by name."""
        items = []
        for dirpath, dirnames, filenames in os.walk(self.folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in filenames:
                path = Path(dirpath) / fname
                if fname.startswith(".") or not fname.lower().endswith(".json") or not path.is_file():
                    continue
                if path.is_symlink() and not _inside(path, self.volume):
                    continue
                items.append(self.info(path))
        return sorted(items, key=lambda w: str(w["name"]).lower())

    def find(self, name: str) -> Path | None:
        """A saved workflow by name: its path below the folder, or a file name found in one
        subfolder only (`run portrait` finds `people/portrait.json`). None when there is none;
        InvalidInput naming the candidates when several match."""
        try:
            return self.path(name)
        except NotFound:
            pass
        except InvalidInput:
            return None
        wanted = check_name(name).lower()
        if "/" in wanted:
            return None
        hits = [w["name"] for w in self.list() if str(w["name"]).rsplit("/", 1)[-1].lower() == wanted]
        if len(hits) > 1:
            raise InvalidInput(
                f"'{name}' names several saved workflows: {', '.join(hits)}", hint="give the folder too"
            )
        return self.path(hits[0]) if hits else None


def _free_name(folder: Path, entry: Path) -> Path:
    """`folder/<entry's name>`, or with ` (1)`, ` (2)`... before the extension when taken."""
    name = entry.name
    stem, ext = name, ""
    if not entry.is_dir() and "." in name:
        stem, ext = name.rsplit(".", 1)
        ext = "." + ext
    target, n = folder / name, 0
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{stem} ({n}){ext}"
    return target


def move_legacy(old: Path, new: Path) -> list[tuple[Path, Path]]:
    """Move everything in `old` into `new` (clashes get a suffix), then remove `old` if empty."""
    if old.is_symlink() or not old.is_dir():
        return []
    new.mkdir(parents=True, exist_ok=True)
    moved = []
    try:
        entries = sorted(old.iterdir())
    except FileNotFoundError:  # another runtime on this volume moved it all and removed it
        return []
    for entry in entries:
        target = _free_name(new, entry)
        try:
            os.rename(entry, target)
        except FileNotFoundError:
            continue  # another runtime on this volume moved it first
        except OSError:
            shutil.move(str(entry), str(target))  # another file system: copy, then delete
        moved.append((entry, target))
    try:
        old.rmdir()
    except OSError:
        pass  # something appeared meanwhile: it moves at the next start
    return moved
