"""pip into the layer: `python -m pip install --prefix LAYER -c CONSTRAINTS -r requirements.txt`.

Run by ComfyUI's own Python, with the layer on its `sys.path` (the hook's variable), so pip sees
the image's packages and the layer's and installs only what is missing (layer.py says why it is
pip and `--prefix`). pip resolves everything before it installs anything: a conflict with the
constraints leaves the layer untouched. The user's own pip settings (`PIP_INDEX_URL`, a pip.conf)
apply; `PIP_PREFIX`, `PIP_TARGET` and `PIP_USER` are removed (they would send the packages
elsewhere). Output is passed on line by line (live progress) and the whole run is time-bounded:
at the deadline its process group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NodeInstallError, RequirementConflict
from .image import LAYER_VARIABLE
from .layer import Layer

LineSink = Callable[[str], None]
TAIL = 40
DROPPED = ("PIP_PREFIX", "PIP_TARGET", "PIP_USER", "PIP_REQUIRE_VIRTUALENV")


@dataclass
class PipResult:
    ok: bool
    conflict: list[str] = field(default_factory=list)  # pip's "The conflict is caused by:" lines
    error: str = ""  # one line a user can act on
    tail: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def message(self) -> str:
        if self.conflict:
            return "conflicts with the image's packages: " + "; ".join(self.conflict)
        return self.error


def pip_environment(layer: Layer, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for name in DROPPED:
        env.pop(name, None)
    env[LAYER_VARIABLE] = str(layer.site)
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip_command(layer: Layer, requirement_files: Sequence[Path], extra: Sequence[str] = ()) -> list[str]:
    argv = [str(layer.image.python), "-m", "pip", "install", "--prefix", str(layer.root)]
    argv += ["-c", str(layer.constraints), "--no-input", "--progress-bar", "off"]
    argv += ["--no-warn-script-location", *extra]
    for path in requirement_files:
        argv += ["-r", str(path)]
    return argv


async def pip_install(
    layer: Layer,
    requirement_files: Sequence[Path],
    *,
    on_line: LineSink | None = None,
    timeout: float = 900.0,
    base_env: Mapping[str, str] | None = None,
) -> PipResult:
    """Install the requirements into the layer. Never raises for pip's own failures."""
    if not requirement_files:
        return PipResult(ok=True)
    layer.ensure()
    argv = pip_command(layer, requirement_files)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=pip_environment(layer, base_env),
            start_new_session=True,
        )
    except OSError as exc:
        return PipResult(ok=False, error=f"cannot run {argv[0]}: {exc.strerror or exc}")
    lines: list[str] = []

    async def pump() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            lines.append(line)
            if on_line is not None and line:
                on_line(line)

    try:
        await asyncio.wait_for(pump(), timeout)
        code = await proc.wait()
    except (TimeoutError, asyncio.CancelledError) as exc:
        _kill(proc)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return PipResult(
            ok=False,
            error=f"pip did not finish in {timeout:g} s (stopped); it resumes at the next try",
            tail=lines[-TAIL:],
            timed_out=True,
        )
    if code == 0:
        for old in layer.dedupe():
            lines.append(f"removed {old} from the layer (replaced by a newer version)")
        return PipResult(ok=True, tail=lines[-TAIL:])
    return explain(lines, code)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def explain(lines: list[str], code: int | None = None) -> PipResult:
    """pip's output of a failed install, as a conflict (named) or one error line."""
    conflict: list[str] = []
    collecting = False
    for line in lines:
        text = line.strip()
        if text.startswith("The conflict is caused by:"):
            collecting, conflict = True, []
            continue
        if collecting:
            if not text:
                collecting = False
                continue
            conflict.append(text)
    if conflict:
        return PipResult(ok=False, conflict=conflict, tail=lines[-TAIL:])
    return PipResult(ok=False, error=_error_line(lines, code), tail=lines[-TAIL:])


_NO_PIP = re.compile(r"No module named pip\b")


def _error_line(lines: list[str], code: int | None) -> str:
    for line in lines:
        if _NO_PIP.search(line):
            return "ComfyUI's Python has no pip: install it into that venv (`python -m ensurepip`)"
    errors = [ln.strip().removeprefix("ERROR: ").strip() for ln in lines if ln.strip().startswith("ERROR:")]
    errors = [e for e in errors if not e.startswith("[notice]")]
    # pip often ends with a generic line after the useful one ("ResolutionImpossible: for help...")
    for err in errors:
        if err.startswith(("No matching distribution", "Could not find a version", "Invalid requirement")):
            return err
    if errors:
        return errors[-1]
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else f"pip exited with code {code}"


def raise_for(result: PipResult, what: str) -> None:
    if result.ok:
        return
    if result.conflict:
        raise RequirementConflict(
            f"{what}: its requirements conflict with the image's packages; nothing was installed: "
            + "; ".join(result.conflict),
            hint="the image's packages (torch & co.) cannot change; use a version of the node made for them",
            conflict=result.conflict,
        )
    raise NodeInstallError(
        f"{what}: installing its requirements failed: {result.error}", tail=result.tail[-10:]
    )
