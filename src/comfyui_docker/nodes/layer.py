"""The package layer on the volume: where the volume's nodes get their Python packages.

    /workspace/python/<key>/                      key: Python tag + torch build (ImageEnv.key)
        lib/python3.11/site-packages/             what `pip install --prefix <key folder>` fills
        bin/                                      their console scripts
        constraints-<fingerprint>.txt             `name==version` for every package of the image
        state.json                                per node: requirements hash, ok, the failure

**After the image's site-packages.** A `.pth` hook in the image's site-packages
(`zz-comfyui-docker-layer.pth`, named to run after the image's own `.pth` files) appends the
layer with `site.addsitedir` when `COMFYUI_DOCKER_PYTHON_LAYER` names it. So the image's
packages stay where they are and win at import; the layer only adds. `PYTHONPATH` and the user
site would come *before* site-packages, which is why neither is used. The runtime writes the hook
when it is missing (one stat per start): the same code names the variable and writes the hook, it
works for a source checkout's venv as for the image's, and without the variable the hook does
nothing.

**pip, with `--prefix` and the constraints.** `pip install --prefix` still sees everything on
`sys.path` (the image and, through the hook, the layer), so it installs only what is missing.
`--target` would not (it implies `--ignore-installed` and reinstalls torch & co. into the layer),
and neither does uv's `--prefix` (it treats the folder as an empty environment: checked with uv
0.13, it would install every dependency again). Without a pin, pip would *uninstall* an image
package it wants to upgrade from the image's venv and put the new one in the layer (checked with
pip 23.2): the constraints file pins every package of the image, so a node that wants another
version is refused with the conflict named instead. The image's own constraints file
(`/app/comfyui/constraints.txt`, torch's CUDA libraries and OpenCV) is merged in. pip, setuptools
and wheel are left unpinned (see BUILD_TOOLS).

ComfyUI's environment gets `COMFYUI_DOCKER_PYTHON_LAYER`, `PIP_PREFIX` (ComfyUI-Manager's and a
node's own `pip install` land in the layer), `PIP_CONSTRAINT` / `UV_CONSTRAINT` (this file) and the
layer's `bin` at the end of `PATH`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model_paths import atomic_write_text
from .image import LAYER_VARIABLE, ImageEnv, canonical

HOOK_NAME = "zz-comfyui-docker-layer.pth"
#: Not pinned: pip applies PIP_CONSTRAINT to the isolated environments it builds sdists in too,
#: where a pinned old setuptools would fail builds that ask for a newer one.
BUILD_TOOLS = frozenset({"pip", "setuptools", "wheel"})
HOOK_TEXT = (
    "import os, site; p = os.environ.get('" + LAYER_VARIABLE + "', ''); "
    "p and os.path.isdir(p) and site.addsitedir(p)\n"
)
STATE_VERSION = 1
_DIST = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-]*?)\.dist-info$")


def _record(info: Path) -> set[str]:
    """The files a `.dist-info`'s RECORD lists (paths relative to site-packages)."""
    try:
        lines = (info / "RECORD").read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {line.rsplit(",", 2)[0] for line in lines if line.strip()}


def image_constraints(python: Path) -> Path | None:
    """The image's own pip/uv constraints file, beside ComfyUI's venv (`/app/comfyui/constraints.txt`)."""
    path = python.parent.parent.parent / "constraints.txt"
    return path if path.is_file() else None


def ensure_hook(image: ImageEnv) -> str | None:
    """Write the `.pth` hook into the image's site-packages when missing. Returns a problem or None."""
    path = image.purelib / HOOK_NAME
    try:
        if path.read_text(encoding="utf-8") == HOOK_TEXT:
            return None
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    try:
        atomic_write_text(path, HOOK_TEXT)
    except OSError as exc:
        return (
            f"cannot write the layer hook {path} ({exc.strerror}): the volume's packages will not be "
            "importable by ComfyUI"
        )
    return None


@dataclass
class NodeRecord:
    """What the layer knows about one node's requirements."""

    hash: str
    ok: bool
    error: str = ""
    conflict: bool = False  # the requirements conflict with the image: retrying cannot help
    at: float = field(default_factory=time.time)
    by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "ok": self.ok,
            "error": self.error,
            "conflict": self.conflict,
            "at": self.at,
            "by": self.by,
        }


class Layer:
    """One layer folder on the volume (for one Python + torch build)."""

    def __init__(self, python_root: Path, image: ImageEnv) -> None:
        self.image = image
        self.root = python_root / image.key
        self.site = image.layer_site(self.root)
        self.bin = self.root / "bin"
        self.state_path = self.root / "state.json"
        self.constraints = self.root / f"constraints-{image.fingerprint}.txt"

    @property
    def key(self) -> str:
        return self.image.key

    @property
    def is_new(self) -> bool:
        """No node was ever handled in this layer (a new image kind on this volume)."""
        return not self.state_path.is_file()

    def ensure(self) -> None:
        """Create the folders and the constraints file (once per image fingerprint)."""
        self.site.mkdir(parents=True, exist_ok=True)
        if not self.constraints.is_file():
            atomic_write_text(self.constraints, self.constraints_text())

    def constraints_text(self) -> str:
        lines = [
            "# Every package of ComfyUI's image, pinned: the volume's layer may add packages, never",
            f"# replace these. Image {self.image.python} (Python {self.image.version}).",
        ]
        lines += [
            f"{name}=={version}"
            for name, version in sorted(self.image.packages.items())
            if name not in BUILD_TOOLS
        ]
        extra = image_constraints(self.image.python)
        if extra is not None:
            lines.append(f"# from {extra}")
            lines += [
                line
                for line in extra.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "-"))
            ]
        return "\n".join(lines) + "\n"

    # ---- one version per package ---------------------------------------------------------------
    def dedupe(self) -> list[str]:
        """Drop what an upgrade inside the layer left behind. Returns the versions removed.

        pip does not uninstall a package outside its environment, and the layer is outside it: an
        upgrade (`nodepkg` 1.0 -> 2.0 in the layer) writes the new files over the old and leaves
        the old `.dist-info` (and any file only the old version had) beside the new. For each
        name with several versions the newest `.dist-info` (the one just written) stays; the others'
        own files and metadata go. One `listdir` when there is nothing to do.
        """
        try:
            names = [n for n in os.listdir(self.site) if n.endswith(".dist-info")]
        except FileNotFoundError:
            return []
        groups: dict[str, list[Path]] = {}
        for name in names:
            match = _DIST.match(name)
            if match:
                groups.setdefault(canonical(match["name"]), []).append(self.site / name)
        removed = []
        for infos in groups.values():
            if len(infos) < 2:
                continue
            infos.sort(key=lambda p: p.stat().st_mtime_ns)
            keep = _record(infos[-1])
            for old in infos[:-1]:
                for rel in _record(old) - keep:
                    target = (self.site / rel).resolve()
                    if target.is_file() and str(target).startswith(str(self.root.resolve()) + os.sep):
                        target.unlink()
                shutil.rmtree(old, ignore_errors=True)
                removed.append(old.name.removesuffix(".dist-info"))
        return removed

    # ---- state.json ------------------------------------------------------------------------
    def read_state(self) -> dict[str, NodeRecord]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return {}
        out: dict[str, NodeRecord] = {}
        nodes = data.get("nodes") if isinstance(data, dict) else None
        for name, raw in (nodes or {}).items():
            if isinstance(raw, dict) and isinstance(raw.get("hash"), str):
                out[str(name)] = NodeRecord(
                    hash=raw["hash"],
                    ok=bool(raw.get("ok")),
                    error=str(raw.get("error") or ""),
                    conflict=bool(raw.get("conflict")),
                    at=float(raw.get("at") or 0),
                    by=str(raw.get("by") or ""),
                )
        return out

    def write_state(self, records: Mapping[str, NodeRecord]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "version": STATE_VERSION,
            "key": self.key,
            "nodes": {k: v.to_dict() for k, v in sorted(records.items())},
        }
        atomic_write_text(self.state_path, json.dumps(data, indent=1) + "\n")

    def record(self, name: str, rec: NodeRecord | None) -> None:
        """Update one node's record (None forgets it), re-reading the file first."""
        records = self.read_state()
        if rec is None:
            records.pop(name, None)
        else:
            records[name] = rec
        self.write_state(records)

    # ---- ComfyUI's environment ---------------------------------------------------------------
    def variables(self) -> dict[str, str]:
        """What ComfyUI's environment needs for the layer (see the module docstring)."""
        return {
            LAYER_VARIABLE: str(self.site),
            "PIP_PREFIX": str(self.root),
            "PIP_CONSTRAINT": str(self.constraints),
            "UV_CONSTRAINT": str(self.constraints),
        }

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with the layer's variables, and its `bin` last on PATH (the image's tools win)."""
        env = dict(base)
        env.update(self.variables())
        path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != str(self.bin)]
        env["PATH"] = os.pathsep.join([*path, str(self.bin)])
        return env
