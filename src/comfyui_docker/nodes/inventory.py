"""The custom nodes ComfyUI will see: the image's (`COMFYUI_ROOT/custom_nodes`) and the volume's.

Listed as ComfyUI lists them (nodes.py, `init_external_custom_nodes`): every folder and every
`.py` file of each custom-node folder, except names ending in `.disabled` and `__pycache__`.
Hidden entries are left out too (ComfyUI would try them and fail). Each node's commit is read
from its `.git` (no subprocess) and its requirements' hash from `requirements.txt` (hashed with
the image's fingerprint, so another image means another hash): listing 20 nodes costs a few
small file reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sources import git_commit

REQUIREMENTS = "requirements.txt"
INSTALL_SCRIPT = "install.py"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    where: str  # image | volume
    path: Path
    is_package: bool  # a folder (False: a single .py file)

    @property
    def requirements(self) -> Path | None:
        path = self.path / REQUIREMENTS
        return path if self.is_package and path.is_file() else None

    @property
    def install_script(self) -> Path | None:
        path = self.path / INSTALL_SCRIPT
        return path if self.is_package and path.is_file() else None

    def commit(self) -> str | None:
        return git_commit(self.path) if self.is_package else None

    def requirements_hash(self, fingerprint: str) -> str:
        """sha256 of requirements.txt (empty when none) and the image's fingerprint."""
        digest = hashlib.sha256(fingerprint.encode() + b"\0")
        req = self.requirements
        if req is not None:
            try:
                digest.update(req.read_bytes())
            except OSError as exc:
                digest.update(f"unreadable: {exc}".encode())
        return digest.hexdigest()[:32]


def scan(folder: Path, where: str) -> list[NodeInfo]:
    """The nodes in one custom-node folder, sorted by name; [] when the folder is missing."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name == "__pycache__" or name.endswith(".disabled"):
            continue
        if entry.is_dir():
            out.append(NodeInfo(name, where, Path(entry.path), True))
        elif name.endswith(".py"):
            out.append(NodeInfo(name, where, Path(entry.path), False))
    return sorted(out, key=lambda n: n.name.lower())


class Sources:
    """Where each volume node came from (`/workspace/cache/nodes/sources.json`), for `update`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, name: str) -> dict[str, Any] | None:
        return self.read().get(name)

    def put(self, name: str, value: dict[str, Any] | None) -> None:
        from ..model_paths import atomic_write_text

        data = self.read()
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
