"""Where a node comes from: a git URL (optionally `@commit`), a local folder or an archive.

`parse_source(text)` says which; `fetch(source, staging)` puts the node's files into `staging`
(a fresh folder under `/workspace/cache/nodes/staging`, on the same volume, so the finished node
is moved into `custom_nodes` with one rename and a failure leaves nothing there):

- git: `git clone --filter=blob:none` (all commits, files on demand), then `checkout REF`.
  No terminal prompt (a private repository fails at once instead of hanging), a low-speed
  limit and an overall timeout: a server that does not answer is a clear error, not a hang.
- folder: copied (without `__pycache__`); links inside must stay inside the folder.
- archive (.zip, .tar.gz, .tgz, .tar): archives.py, every member checked before anything is
  written.

A node is a Python package: without `__init__.py` at its top it is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FetchError, InvalidInput
from .names import NAME_RE, inside

GIT_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://")
SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[^/].*")
REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")
GIT_TIMEOUT = 600.0

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    kind: str  # git | folder | archive
    location: str  # the URL, or an absolute path
    ref: str | None = None

    @property
    def default_name(self) -> str:
        """The node's folder name when none is given: the repository, folder or archive name."""
        if self.kind == "git":
            tail = re.split(r"[/:]", self.location.rstrip("/"))[-1]
            return tail.removesuffix(".git")
        name = Path(self.location).name
        for suffix in ARCHIVES:
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name

    def __str__(self) -> str:
        return f"{self.location}@{self.ref}" if self.ref else self.location


def parse_source(text: str, cwd: Path | None = None, *, git_only: bool = False) -> Source:
    """A git URL (`URL@REF` pins a commit, tag or branch), an existing folder or an archive.
    `git_only`: a git URL or an error (the dashboard: nothing is looked up on disk)."""
    raw = (text or "").strip()
    if not raw or "\x00" in raw:
        raise InvalidInput("no source given", hint="a git URL, a local folder or a .zip/.tar.gz archive")
    if raw.startswith(GIT_PREFIXES) or SCP_LIKE.match(raw):
        url, ref = raw, None
        head, sep, tail = raw.rpartition("@")
        if sep and REF_RE.match(tail) and "/" in head.split("://", 1)[-1]:
            url, ref = head, tail
        return Source("git", url, ref)
    if git_only:
        raise InvalidInput(
            f"'{raw[:200]}' is not a git URL", hint="https://github.com/owner/repo, optionally @commit"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError:  # a name too long for the file system, say
        is_dir = is_file = False
    if is_dir:
        return Source("folder", str(path.resolve()))
    if is_file and raw.lower().endswith(ARCHIVES):
        return Source("archive", str(path.resolve()))
    if is_file:
        raise InvalidInput(
            f"{raw[:200]} is a file but not an archive", hint="give a .zip, .tar.gz, .tgz or .tar archive"
        )
    raise InvalidInput(
        f"{raw[:200]} is not a git URL, a folder or an archive",
        hint="e.g. https://github.com/owner/repo (optionally @commit), /path/to/node or node.zip",
    )


async def fetch(
    source: Source, staging: Path, *, on_line: LineSink | None = None, timeout: float = GIT_TIMEOUT
) -> None:
    """Fill `staging` (must not exist) with the node's files, or raise FetchError/InvalidInput."""
    if source.kind == "git":
        await clone(source.location, staging, source.ref, on_line=on_line, timeout=timeout)
    elif source.kind == "folder":
        await asyncio.to_thread(copy_folder, Path(source.location), staging)
    elif source.kind == "archive":
        from .archives import extract

        await asyncio.to_thread(extract, Path(source.location), staging)
    else:  # pragma: no cover - parse_source makes only these
        raise InvalidInput(f"unknown source kind {source.kind}")
    check_package(staging, str(source))


def check_package(folder: Path, what: str) -> None:
    if not (folder / "__init__.py").is_file():
        raise InvalidInput(
            f"{what} has no __init__.py at its top: it is not a ComfyUI custom node package",
            hint="a node is a folder with __init__.py (and NODE_CLASS_MAPPINGS in it)",
        )


# ---- git -----------------------------------------------------------------------------------------
def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # a repository that wants a password fails instead of waiting
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=20")
    return env


async def git(
    *args: str, cwd: Path | None = None, on_line: LineSink | None = None, timeout: float = GIT_TIMEOUT
) -> str:
    """Run git; its output, or FetchError with git's own last `fatal:`/`error:` line."""
    argv = ["git", "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30", *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=git_env(),
            start_new_session=True,
        )
    except OSError as exc:
        raise FetchError(f"cannot run git: {exc.strerror or exc}", hint="install git") from None
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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise FetchError(
            f"git {args[0]} got no answer in {timeout:g} s",
            hint="check the URL and the network; the server did not answer",
        ) from None
    if code != 0:
        said = [ln for ln in lines if ln.startswith(("fatal:", "error:"))] or lines[-1:] or ["no output"]
        raise FetchError(
            f"git {args[0]} failed: {said[-1].removeprefix('fatal: ')}",
            hint="check the URL (a private repository needs its token in the URL) and the commit",
        )
    return "\n".join(lines)


async def clone(
    url: str, dest: Path, ref: str | None, *, on_line: LineSink | None = None, timeout: float = GIT_TIMEOUT
) -> None:
    await git(
        "clone",
        "--quiet",
        "--filter=blob:none",
        "--recurse-submodules",
        *(["--no-checkout"] if ref else []),
        "--",
        url,
        str(dest),
        on_line=on_line,
        timeout=timeout,
    )
    if ref:
        await git("checkout", "--quiet", ref, cwd=dest, on_line=on_line, timeout=timeout)
        await git("submodule", "update", "--init", "--recursive", cwd=dest, on_line=on_line, timeout=timeout)


def git_dir(node: Path) -> Path | None:
    dot = node / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():  # a worktree or submodule: "gitdir: PATH"
        text = dot.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (node / target)
    return None


def git_commit(node: Path) -> str | None:
    """The checked-out commit, read from `.git` (no subprocess: cheap enough for every node)."""
    gdir = git_dir(node)
    if gdir is None:
        return None
    try:
        head = (gdir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = gdir
    with contextlib.suppress(OSError):
        common = gdir / (gdir / "commondir").read_text(encoding="utf-8").strip()
    for base in (gdir, common):
        with contextlib.suppress(OSError):
            return (base / ref).read_text(encoding="utf-8").strip()
    with contextlib.suppress(OSError):
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


# ---- folder --------------------------------------------------------------------------------------
def copy_folder(src: Path, dest: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() and not inside(path, src):
                raise InvalidInput(
                    f"{path} is a link to {os.path.realpath(path)}, outside the node's folder",
                    hint="replace the link with the files it points at",
                )
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))


def default_name(source: Source) -> str:
    """The node's name from its source, cleaned of GitHub archive suffixes (`-main`, `-master`)."""
    name = source.default_name
    if source.kind == "archive":
        for suffix in ("-main", "-master"):
            name = name.removesuffix(suffix)
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"cannot make a node name from {source}", hint="give one with --name (letters, digits, . _ -)"
        )
    return name
