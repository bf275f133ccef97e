"""Where and how a part file's bytes reach the disk: whether O_DIRECT helps on the file system a
path is on (local block devices, not network or FUSE volumes), and `pwritev` of every byte of a
list of buffers."""

from __future__ import annotations

import os
from pathlib import Path

Buffer = bytes | bytearray | memoryview


# O_DIRECT where it is known to help: file systems on a local block device. Network and FUSE
# volumes (NFS, MooseFS, ...) keep the page cache, which batches their writes.
DIRECT_IO_FS = frozenset({"ext4", "ext3", "xfs", "btrfs", "f2fs"})
MOUNTS = Path("/proc/self/mounts")


def file_system_of(path: Path, mounts: Path = MOUNTS) -> str | None:
    """The type of the file system `path` is on (the longest mount point above it)."""
    try:
        lines = mounts.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = -1, None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # a later mount over the same point wins
            best, kind = len(point), fields[2]
    return kind


def direct_io_helps(path: Path, mounts: Path = MOUNTS) -> bool:
    return file_system_of(path, mounts) in DIRECT_IO_FS


IOV_MAX = 1024  # Linux's limit on buffers per pwritev call


def pwrite_all(fd: int, blocks: list[Buffer], offset: int) -> None:
    """`pwritev` every byte of `blocks` at `offset` (short writes continue where they stopped)."""
    views = [memoryview(b) for b in blocks if b]
    pos = offset
    while views:
        n = os.pwritev(fd, views[:IOV_MAX], pos)
        if n <= 0:
            raise OSError(f"pwritev wrote nothing at offset {pos}")
        pos += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
