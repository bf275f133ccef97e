"""ComfyUI and the custom nodes from local folders, checked against the pins, staged for the build.

The published build clones ComfyUI at COMFYUI_COMMIT and every node at its listed commit; this
machine reaches no git host, so `make image-check` takes local checkouts instead (COMFYUI_SRC,
NODES_SRC), refuses any that is not at the pinned commit, and copies exactly their tracked files
(with `.git`, as a clone has) into a staging folder that replaces the Dockerfile's source stages.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import DOCKERFILE, NODE_LISTS


class SourceError(Exception):
    """A source folder is missing or not at its pin: the message says what to provide."""


@dataclass(frozen=True)
class Node:
    name: str
    url: str
    commit: str


@dataclass
class Staged:
    path: Path
    missing: list[str] = field(default_factory=list)  # tracked files absent from the checkout
    restaged: bool = False


def dockerfile_default(arg: str) -> str:
    """The default of `ARG NAME=value` in docker/Dockerfile (the published pin)."""
    m = re.search(rf"^ARG {re.escape(arg)}=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    if not m:
        raise SourceError(f"docker/Dockerfile declares no default for ARG {arg}")
    return m.group(1)


def variant_nodes(variant: str) -> list[Node]:
    """The nodes of a variant, in the order install-custom-nodes.sh installs them."""
    lists = {"minimal": ["minimal"], "standard": ["minimal", "standard"]}.get(
        variant, ["minimal", "standard", "full"]
    )
    out = []
    for name in lists:
        for raw in (NODE_LISTS / f"{name}.txt").read_text(encoding="utf-8").splitlines():
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            url, commit = words[0], words[1]
            out.append(Node(url.rstrip("/").removesuffix(".git").rsplit("/", 1)[1], url, commit))
    return out


def _git(path: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(path), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SourceError(f"git {' '.join(args)} in {path}: {proc.stderr.strip()}")
    return proc.stdout


def checkout_state(path: Path, commit: str, what: str) -> tuple[list[str], list[str]]:
    """(tracked files, tracked files missing) of a git checkout that must be at `commit`.

    A changed tracked file is refused; a missing one (a snapshot without some large files) is
    reported and the build goes on without it.
    """
    if not (path / ".git").exists():
        raise SourceError(f"{what}: {path} is not a git checkout (need commit {commit})")
    head = _git(path, "rev-parse", "HEAD").strip()
    if head != commit:
        raise SourceError(f"{what}: {path} is at {head}, the pin is {commit}")
    missing: list[str] = []
    changed: list[str] = []
    for line in _git(path, "status", "--porcelain", "--untracked-files=no").splitlines():
        state, name = line[:2], line[3:]
        (missing if state.strip() == "D" else changed).append(name)
    if changed:
        raise SourceError(f"{what}: {path} has changed tracked files: {', '.join(changed[:10])}")
    tracked = [f for f in _git(path, "ls-files", "-z").split("\0") if f]
    return tracked, missing


def comfyui_pin() -> tuple[str, str]:
    """(version without the v, commit) that the Dockerfile clones."""
    return dockerfile_default("COMFYUI_VERSION").removeprefix("v"), dockerfile_default("COMFYUI_COMMIT")


def check_comfyui(src: Path) -> tuple[list[str] | None, list[str]]:
    """(tracked files, or None for a folder without git; missing files) of COMFYUI_SRC."""
    version, commit = comfyui_pin()
    if not (src / "main.py").is_file():
        raise SourceError(f"COMFYUI_SRC={src} has no main.py: point it at a ComfyUI checkout")
    if (src / ".git").exists():
        return checkout_state(src, commit, "COMFYUI_SRC")
    text = (
        (src / "comfyui_version.py").read_text(encoding="utf-8")
        if (src / "comfyui_version.py").exists()
        else ""
    )
    if f'__version__ = "{version}"' not in text:
        raise SourceError(f"COMFYUI_SRC={src} is not ComfyUI {version} (comfyui_version.py)")
    return None, []


# Part of every staged copy's fingerprint: raise it when what _copy_tree copies changes, so that a
# copy staged by the older rules is made again.
STAGE_RULES = 2


def _fingerprint(src: Path, tracked: list[str] | None) -> str:
    h = hashlib.sha256(f"{STAGE_RULES}:{src}".encode())
    if tracked is not None:
        h.update(_git(src, "rev-parse", "HEAD").encode())
        h.update(_git(src, "status", "--porcelain", "--untracked-files=no").encode())
    else:
        for p in sorted(src.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                st = p.stat()
                h.update(f"{p.relative_to(src)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


# ComfyUI's own run-time folders, left out at the top of a folder without git (never deeper:
# comfy_api/input is a package). Bytecode is left out at every depth.
RUNTIME_DIRS = {"user", "output", "input", "temp"}


def runtime_ignore(src: Path) -> Callable[[str, list[str]], list[str]]:
    """shutil.copytree's `ignore` for a ComfyUI folder without git: its run-time folders, bytecode."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == src
        return [n for n in names if n == "__pycache__" or (top and n in RUNTIME_DIRS)]

    return ignore


def _copy_tree(src: Path, dest: Path, tracked: list[str] | None) -> None:
    if tracked is None:
        shutil.copytree(src, dest, symlinks=True, ignore=runtime_ignore(src))
        return
    dest.mkdir(parents=True)
    for rel in tracked:
        s = src / rel
        if not s.exists() and not s.is_symlink():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, dest / rel, follow_symlinks=False)
    shutil.copytree(src / ".git", dest / ".git", symlinks=True)


def stage(src: Path, dest: Path, tracked: list[str] | None) -> bool:
    """Copy `src` to `dest` unless the staged copy is already of the same state. True: copied."""
    stamp = dest.with_name(dest.name + ".stamp")
    fingerprint = _fingerprint(src, tracked)
    if dest.is_dir() and stamp.is_file() and stamp.read_text() == fingerprint:
        return False
    if dest.exists():
        shutil.rmtree(dest)
    _copy_tree(src, dest, tracked)
    stamp.write_text(fingerprint)
    return True


def stage_comfyui(src: Path, work: Path) -> Staged:
    tracked, missing = check_comfyui(src)
    dest = work / "stage" / "comfyui"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Staged(dest, missing, stage(src, dest, tracked))


def missing_nodes_message(nodes: list[Node], nodes_src: Path | None) -> str:
    lines = [f"  {n.name:<32} {n.url} @ {n.commit}" for n in nodes]
    where = f"NODES_SRC={nodes_src}" if nodes_src else "NODES_SRC=DIR"
    return (
        f"{where}: a folder with one git checkout per custom node, named as below, each at its commit:\n"
        + "\n".join(lines)
        + "\n  e.g. git clone URL DIR/NAME && git -C DIR/NAME checkout COMMIT"
    )


def stage_nodes(variant: str, nodes_src: Path | None, work: Path) -> Staged:
    nodes = variant_nodes(variant)
    dest = work / "stage" / f"nodes-{variant}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not nodes:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir()
        return Staged(dest)
    if nodes_src is None or not nodes_src.is_dir():
        raise SourceError(missing_nodes_message(nodes, nodes_src))
    absent = [n for n in nodes if not (nodes_src / n.name / ".git").exists()]
    if absent:
        raise SourceError(missing_nodes_message(absent, nodes_src))
    states = {n.name: checkout_state(nodes_src / n.name, n.commit, f"custom node {n.name}") for n in nodes}
    fingerprint = hashlib.sha256(
        "".join(_fingerprint(nodes_src / n.name, states[n.name][0]) for n in nodes).encode()
    ).hexdigest()
    stamp = dest.with_name(dest.name + ".stamp")
    missing = [f"{name}/{f}" for name, (_t, gone) in states.items() for f in gone]
    if dest.is_dir() and stamp.is_file() and stamp.read_text() == fingerprint:
        return Staged(dest, missing)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    for n in nodes:
        _copy_tree(nodes_src / n.name, dest / n.name, states[n.name][0])
    stamp.write_text(fingerprint)
    return Staged(dest, missing, True)
