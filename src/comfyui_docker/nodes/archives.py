"""Node archives (.zip, .tar.gz, .tgz, .tar), unpacked safely into a staging folder.

Every member is checked before anything is written: no absolute path, no `..`, no link leading out
of the node (checked against what is kept once one top folder, as GitHub's archives have, is
stripped), no device or fifo. A refused or unreadable archive leaves nothing behind.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InvalidInput


def _member_path(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, None for the archive's own root; InvalidInput when unsafe."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise InvalidInput(f"{archive.name}: member '{name}' has an absolute path; nothing was extracted")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(
            f"{archive.name}: member '{name}' leads outside the archive ('..'); nothing was extracted"
        )
    return PurePosixPath(*parts) if parts else None


def _link_ok(member: PurePosixPath, target: str, archive: Path) -> None:
    if target.startswith("/"):
        raise InvalidInput(
            f"{archive.name}: link '{member}' points at an absolute path; nothing was extracted"
        )
    joined = posixpath.normpath(posixpath.join(str(member.parent), target))
    if joined == ".." or joined.startswith("../"):
        raise InvalidInput(
            f"{archive.name}: link '{member}' -> '{target}' leads outside the archive; nothing was extracted"
        )


@dataclass(frozen=True)
class _Entry:
    path: PurePosixPath
    kind: str  # dir | file | symlink | hardlink
    target: str = ""  # link target
    mode: int = 0o644


def _zip_entries(zf: zipfile.ZipFile, archive: Path) -> Iterator[tuple[_Entry, zipfile.ZipInfo]]:
    for info in zf.infolist():
        path = _member_path(info.filename, archive)
        if path is None:
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            yield _Entry(path, "symlink", target), info
        elif info.is_dir():
            yield _Entry(path, "dir"), info
        elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # no type bits: a plain file
            raise InvalidInput(f"{archive.name}: member '{info.filename}' is not a file or folder")
        else:
            yield _Entry(path, "file", mode=(mode & 0o777) or 0o644), info


def _tar_entries(tf: tarfile.TarFile, archive: Path) -> Iterator[tuple[_Entry, tarfile.TarInfo]]:
    for member in tf.getmembers():
        path = _member_path(member.name, archive)
        if path is None:
            continue
        if member.issym():
            yield _Entry(path, "symlink", member.linkname), member
        elif member.islnk():
            target = _member_path(member.linkname, archive)
            if target is None:
                raise InvalidInput(f"{archive.name}: hard link '{member.name}' points at the archive root")
            yield _Entry(path, "hardlink", str(target)), member
        elif member.isdir():
            yield _Entry(path, "dir"), member
        elif member.isfile():
            yield _Entry(path, "file", mode=(member.mode & 0o777) or 0o644), member
        else:
            raise InvalidInput(
                f"{archive.name}: member '{member.name}' is a device or fifo; nothing was extracted"
            )


def extract(archive: Path, dest: Path) -> None:
    """Check every member first, then write them under `dest` (one top folder stripped)."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zentries = list(_zip_entries(zf, archive))
                strip = _checked_top([e for e, _ in zentries], archive)
                for entry, info in zentries:
                    _write(entry, strip, dest, functools.partial(zf.read, info))
        else:
            with tarfile.open(archive, "r:*") as tf:
                tentries = list(_tar_entries(tf, archive))
                strip = _checked_top([e for e, _ in tentries], archive)

                def reader(member: tarfile.TarInfo) -> bytes:
                    fh = tf.extractfile(member)
                    return fh.read() if fh is not None else b""

                for entry, member in tentries:
                    _write(entry, strip, dest, functools.partial(reader, member))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise InvalidInput(f"{archive.name} is not a readable archive: {exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _checked_top(entries: list[_Entry], archive: Path) -> str | None:
    """The top folder to strip (or None), once every link is known to stay inside what is kept."""
    strip = _common_top(entries)
    for entry in entries:
        if entry.kind == "symlink":
            kept = PurePosixPath(*entry.path.parts[1:]) if strip else entry.path
            _link_ok(kept, entry.target, archive)
    return strip


def _common_top(entries: list[_Entry]) -> str | None:
    tops = {e.path.parts[0] for e in entries}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    only_dir = all(len(e.path.parts) > 1 or e.kind == "dir" for e in entries)
    return top if only_dir else None


def _write(entry: _Entry, strip: str | None, dest: Path, read: Callable[[], bytes]) -> None:
    parts = entry.path.parts[1:] if strip else entry.path.parts
    if not parts:
        return
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry.kind == "dir":
        target.mkdir(exist_ok=True)
    elif entry.kind == "symlink":
        os.symlink(entry.target, target)
    elif entry.kind == "hardlink":
        src_parts = PurePosixPath(entry.target).parts
        source = dest.joinpath(*(src_parts[1:] if strip else src_parts))
        shutil.copyfile(source, target)
    else:
        target.write_bytes(read())
        os.chmod(target, entry.mode | 0o600)
