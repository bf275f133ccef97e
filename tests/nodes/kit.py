"""Test kit for custom nodes: wheels built here, a stand-in image venv, node folders, git repos.

- `make_wheel`: a real wheel file (dist-info METADATA, WHEEL, RECORD), written with zipfile.
- `image_venv`: `python -m venv` (pip from ensurepip, no network) with a `.pth` line to this
  project's venv (so the fake ComfyUI runs in it) and a stand-in `torch` wheel: an "image" with a
  Python, a torch build and packages, as ComfyUI's venv is in the real image.
- `pip_offline`: the environment variables that make pip use only the local wheels.
- `bare_repo`: a bare git repository with commits, reachable as a `file://` URL.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
) -> Path:
    dist = name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    files = dict(modules or {f"{dist}/__init__.py": f"VERSION = {version!r}\n"})
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for rel, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return path


def standard_wheels(folder: Path) -> Path:
    """The wheels the tests install: a tiny dependency in two versions, a package needing it,
    one that wants another torch, a torch stand-in in two versions."""
    make_wheel(folder, "torch", "2.9.1")
    make_wheel(folder, "torch", "2.0.0")
    make_wheel(folder, "tinydep", "1.0")
    make_wheel(folder, "tinydep", "2.0")
    make_wheel(folder, "nodepkg", "1.0", ["tinydep>=1"])
    make_wheel(folder, "nodepkg", "2.0", ["tinydep>=1"])
    make_wheel(folder, "otherpkg", "1.0")
    make_wheel(folder, "wantstorch", "1.0", ["torch==2.0.0"])
    return folder


def pip_offline(wheels: Path) -> dict[str, str]:
    """pip without this machine's pip.conf or any index: the local wheels only."""
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def run_pip(python: Path, *args: str, wheels: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(pip_offline(wheels))
    subprocess.run([str(python), "-m", "pip", "install", "-q", *args], check=True, env=env)


def image_venv(folder: Path, wheels: Path, *, torch: str = "2.9.1") -> Path:
    """A stand-in for the image's ComfyUI venv; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()["purelib"]  # this project's venv: aiohttp & co. for the fake ComfyUI
    (site / "project-venv.pth").write_text(f"{ours}\n{REPO / 'src'}\n")
    run_pip(python, f"torch=={torch}", "tinydep==1.0", wheels=wheels)
    return python


def node_folder(parent: Path, name: str, *, requirements: str | None = None, init: str | None = None) -> Path:
    """A custom node package: `__init__.py` with one V1 node class, and requirements.txt if given."""
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    cls = "".join(p.capitalize() for p in name.replace("-", "_").split("_")) or "Node"
    (path / "__init__.py").write_text(
        init
        if init is not None
        else (
            f"class {cls}:\n"
            "    @classmethod\n"
            "    def INPUT_TYPES(cls):\n"
            "        return {'required': {'value': ('INT', {'default': 1})}}\n"
            "    RETURN_TYPES = ('INT',)\n"
            "    FUNCTION = 'run'\n"
            "    CATEGORY = 'tests'\n"
            "    def run(self, value):\n"
            "        return (value,)\n"
            f"NODE_CLASS_MAPPINGS = {{'{cls}': {cls}}}\n"
        ),
        encoding="utf-8",
    )
    if requirements is not None:
        (path / "requirements.txt").write_text(requirements, encoding="utf-8")
    return path


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip()


class BareRepo:
    """A bare repository at `<tmp>/<name>.git` and a work tree to commit into; `url` is file://."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.bare = tmp / f"{name}.git"
        self.work = tmp / f"{name}-work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        for rel, text in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", "main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)
