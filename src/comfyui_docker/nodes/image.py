"""What ComfyUI's Python (the image's venv) has: its version, torch build and packages.

One probe in that interpreter (`python -I -c ...`, ~20-40 ms, no torch import) reports:
- the Python tag (`cp311`) and version;
- its site-packages and the site-packages folder pip uses under a `--prefix` (the layer's);
- every distribution on its `sys.path` (name and version, read from the `*.dist-info` /
  `*.egg-info` folder names: no metadata file is opened), the first one on the path winning,
  as at import time.

The layer's own variable is removed from the probe's environment, so what it sees is the image
alone. `fingerprint` changes whenever a package of the image changes (another image).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AppError

#: The environment variable the .pth hook reads: the layer's site-packages folder.
LAYER_VARIABLE = "COMFYUI_DOCKER_PYTHON_LAYER"

_PROBE = r"""
import json, os, sys, sysconfig
scheme = sysconfig.get_preferred_scheme("prefix")
dists = []
for entry in sys.path:
    try:
        names = os.listdir(entry or ".")
    except OSError:
        continue
    dists += [n for n in sorted(names) if n.endswith((".dist-info", ".egg-info"))]
print(json.dumps({
    "tag": "cp%d%d" % sys.version_info[:2],
    "version": "%d.%d.%d" % sys.version_info[:3],
    "executable": sys.executable,
    "purelib": sysconfig.get_paths()["purelib"],
    "prefix_purelib": sysconfig.get_paths(scheme=scheme, vars={"base": "@L@", "platbase": "@L@"})["purelib"],
    "dists": dists,
}))
"""

_DIST_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-]*?)(?:-py\d[\d.]*)?\.(?:dist|egg)-info$"
)


def canonical(name: str) -> str:
    """PEP 503 normalised name: `Pillow`, `pillow_simd`, `pillow.simd` -> `pillow`, `pillow-simd`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_dists(folders: list[str]) -> dict[str, str]:
    """{canonical name: version} from metadata folder names; the first of a name wins."""
    out: dict[str, str] = {}
    for folder in folders:
        match = _DIST_RE.match(folder)
        if match is None:
            continue  # an egg-info without a version (a `develop` install): nothing to pin
        out.setdefault(canonical(match["name"]), match["version"])
    return out


@dataclass(frozen=True)
class ImageEnv:
    """ComfyUI's interpreter as the probe saw it."""

    python: Path
    tag: str  # cp311
    version: str  # 3.11.7
    purelib: Path
    prefix_purelib: str  # with "@L@" where the prefix goes
    packages: Mapping[str, str] = field(default_factory=dict)

    @property
    def torch(self) -> str | None:
        return self.packages.get("torch")

    @property
    def key(self) -> str:
        """The layer's name: Python tag and torch build, e.g. `cp311-torch2.9.1+cu128`."""
        torch = f"torch{self.torch}" if self.torch else "notorch"
        return f"{self.tag}-{torch}"

    @property
    def fingerprint(self) -> str:
        """Changes when any package of the image changes (12 hex digits)."""
        text = "\n".join(f"{k}=={v}" for k, v in sorted(self.packages.items()))
        return hashlib.sha256(f"{self.tag}\n{text}".encode()).hexdigest()[:12]

    def layer_site(self, root: Path) -> Path:
        """Where `pip install --prefix root` puts packages for this interpreter."""
        return Path(self.prefix_purelib.replace("@L@", str(root)))


def probe_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.pop(LAYER_VARIABLE, None)
    return env


async def probe(python: Path, *, timeout: float = 30.0) -> ImageEnv:
    """Run the probe in `python`. AppError when it cannot run or answers nonsense."""
    try:
        proc = await asyncio.create_subprocess_exec(
            str(python),
            "-I",
            "-c",
            _PROBE,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=probe_env(),
        )
    except OSError as exc:
        raise AppError(
            f"cannot run ComfyUI's Python {python}: {exc.strerror or exc}",
            hint="check COMFYUI_PYTHON",
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AppError(f"ComfyUI's Python {python} did not answer in {timeout:g} s") from None
    if proc.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise AppError(f"ComfyUI's Python {python} failed to describe itself: {last[0]}")
    try:
        data = json.loads(out)
        return ImageEnv(
            python=python,
            tag=str(data["tag"]),
            version=str(data["version"]),
            purelib=Path(data["purelib"]),
            prefix_purelib=str(data["prefix_purelib"]),
            packages=parse_dists([str(d) for d in data["dists"]]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AppError(f"ComfyUI's Python {python} gave an unreadable answer: {exc}") from None


def shares_dashboard_python(python: Path) -> bool:
    """ComfyUI would run in this very venv: no layer then (it would change the dashboard's)."""
    return os.path.abspath(python.parent.parent) == os.path.abspath(sys.prefix)
