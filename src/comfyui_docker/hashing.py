"""sha256 of a file on disk, read in large blocks (hashlib releases the GIL while it hashes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            h.update(chunk)
    return h.hexdigest()
