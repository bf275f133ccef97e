"""Node names and their folder on the volume: nothing may lead outside `/workspace/custom_nodes`.

A name is one folder name: letters, digits, `.`, `_`, `-` (what git repositories are called),
not hidden, not `__pycache__`, not ending in `.disabled` (ComfyUI skips those). `../x`, `a/b`,
an absolute path, NUL: refused. A node folder that is a link is followed only when it stays on
the volume (`/workspace/custom_nodes/x -> /etc` is refused).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InvalidInput, NotFound

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    """`name` when it is a safe node folder name, else InvalidInput saying what is allowed."""
    if not isinstance(name, str) or "\x00" in name:
        raise InvalidInput("a node name cannot contain NUL bytes")
    if not NAME_RE.match(name) or ".." in name or name.lower().endswith(".disabled") or name == "__pycache__":
        raise InvalidInput(
            f"'{name[:120]}' is not a valid node name",
            hint="one folder name: letters, digits, '.', '_' and '-' (no '/', no '..')",
        )
    return name


def inside(path: Path, root: Path) -> bool:
    """True when `path`, links resolved, is `root` or below it."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def node_path(folder: Path, volume: Path, name: str, *, must_exist: bool = True) -> Path:
    """The volume folder of node `name`; refuses names and links that lead out of the volume."""
    path = folder / check_name(name)
    if path.is_symlink() and not inside(path, volume):
        raise InvalidInput(
            f"'{name}' is a link to {os.path.realpath(path)}, outside the volume",
            hint="remove the link by hand if it is yours",
        )
    if must_exist and not (path.is_dir() or path.is_symlink()):
        raise NotFound(
            f"no node named '{name}' on the volume ({folder})",
            hint="see `comfyui-docker nodes list`",
            name=name,
        )
    return path
