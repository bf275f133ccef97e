"""Are a node's requirements met? Asked of ComfyUI's own Python, with the layer on its path.

One subprocess for every node at once (~0.1-0.2 s): ComfyUI's interpreter evaluates each line of
each `requirements.txt` with pip's own `packaging` (markers for its Python and platform) against
the distributions it can import - the image's and the layer's, exactly what ComfyUI will see. No
network, nothing installed. Lines it cannot judge without pip's resolver (options such as `-r` or
`--index-url`, URLs, `name @ url`, editable installs) make the node `unchecked`: pip decides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .layer import Layer
from .pip import pip_environment

_SCRIPT = r"""
import json, sys
from importlib import metadata
try:
    from pip._vendor.packaging.requirements import Requirement, InvalidRequirement
except ImportError:
    from packaging.requirements import Requirement, InvalidRequirement
out = {}
for path in json.loads(sys.argv[1]):
    missing, unchecked = [], []
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError as exc:
        out[path] = {"missing": [], "unchecked": ["unreadable: %s" % exc]}
        continue
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line:
            unchecked.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unchecked.append(line)
            continue
        if req.url:
            unchecked.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(line + " (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append("%s (%s installed)" % (line, have))
    out[path] = {"missing": missing, "unchecked": unchecked}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ReqState:
    missing: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return not self.missing and not self.unchecked


async def check(
    layer: Layer,
    files: list[Path],
    *,
    timeout: float = 60.0,
    base_env: Mapping[str, str] | None = None,
) -> dict[Path, ReqState]:
    """{requirements file: state}; a file whose check failed is `unchecked` (pip will decide)."""
    if not files:
        return {}
    failed = {f: ReqState(unchecked=["the check did not run"]) for f in files}
    try:
        proc = await asyncio.create_subprocess_exec(
            str(layer.image.python),
            "-c",
            _SCRIPT,
            json.dumps([str(f) for f in files]),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=pip_environment(layer, base_env),
        )
    except OSError:
        return failed
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return failed
    try:
        data = json.loads(out)
        return {f: ReqState(list(data[str(f)]["missing"]), list(data[str(f)]["unchecked"])) for f in files}
    except (ValueError, KeyError, TypeError):
        return failed
