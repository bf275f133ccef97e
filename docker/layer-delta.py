#!/usr/bin/env python3
"""Copy what a tree added or changed on top of a base tree, for a layer of its own.

    layer-delta.py BASE TREE OUT

TREE grew from BASE (the torch stage's /app/comfyui) by later installs. OUT receives every
file, link and folder of TREE that BASE does not have or has differently (size, mtime, mode,
link target), with its metadata. Copied into the image after BASE, OUT rebuilds TREE exactly,
while BASE stays one layer shared by every variant.

A layer cannot delete what the layer below holds, so a path of BASE that TREE lost is an error
(a later install replaced a package of the base layer: pin it instead).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path


class LostPaths(Exception):
    pass


def _same(a: os.stat_result, b: os.stat_result, a_path: Path, b_path: Path) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or a.st_mode != b.st_mode:
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(a_path) == os.readlink(b_path)
    if stat.S_ISDIR(a.st_mode):
        return True  # a folder's own metadata does not decide; its entries do
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def delta(base: Path, tree: Path, out: Path) -> tuple[int, int]:
    """(files copied, bytes copied). Raises LostPaths when TREE lacks paths of BASE."""
    lost: list[str] = []
    for root, dirs, files in os.walk(base):
        rel = Path(root).relative_to(base)
        for name in dirs + files:
            if not os.path.lexists(tree / rel / name):
                lost.append(str(rel / name))
    if lost:
        shown = "\n  ".join(sorted(lost)[:20])
        raise LostPaths(f"{len(lost)} paths of the base layer are gone from {tree}:\n  {shown}")

    copied = size = 0
    out.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(tree):
        rel = Path(root).relative_to(tree)
        for name in sorted(dirs):
            src = tree / rel / name
            if src.is_symlink():
                dirs.remove(name)
                files.append(name)
                continue
            (out / rel / name).mkdir(exist_ok=True)
        for name in files:
            src = tree / rel / name
            st = src.lstat()
            old = base / rel / name
            if os.path.lexists(old) and _same(old.lstat(), st, old, src):
                continue
            shutil.copy2(src, out / rel / name, follow_symlinks=False)
            copied += 1
            size += 0 if stat.S_ISLNK(st.st_mode) else st.st_size
    # Folders last, so their mtimes are not changed by the files written into them.
    for root, dirs, _files in os.walk(tree):
        rel = Path(root).relative_to(tree)
        for name in dirs:
            if not (tree / rel / name).is_symlink():
                shutil.copystat(tree / rel / name, out / rel / name)
    shutil.copystat(tree, out)
    return copied, size


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: layer-delta.py BASE TREE OUT", file=sys.stderr)
        return 2
    base, tree, out = (Path(a) for a in argv[1:])
    try:
        copied, size = delta(base, tree, out)
    except LostPaths as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"layer-delta: {copied} files, {size / 2**20:.1f} MiB on top of {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
