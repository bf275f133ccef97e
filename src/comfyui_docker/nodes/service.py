"""The custom-node use case: list, install, update, remove, check. Used by the CLI, the API and
the start-up phase.

Every change takes the volume's node lock (`cache/locks/custom-nodes.lock`, the downloads'
`VolumeLock`: owner + heartbeat, so two runtimes or a runtime and a CLI on one volume take turns).

Install: source -> staging (`cache/nodes/staging/<id>`, same volume) -> its requirements into the
layer with the constraints -> one rename into `custom_nodes/<name>` -> `install.py` only with
`allow_script`. Any failure removes the staging folder: nothing is left behind, and a conflict with
the image's packages installs nothing at all (pip resolves first). `install.py` is off by default:
it is arbitrary code run at install time that usually pip-installs on its own, around the
constraints, and into whatever environment it finds; `requirements.txt` is declarative and checked.

Update: git nodes in place (fetch, checkout the new commit or `ref`), requirements, and back to the
old commit if they fail; nodes from a folder or archive are fetched again from the recorded source.
Remove: the folder (a link on the volume: the link only); its packages stay in the layer (other
nodes may use them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..downloads.locks import VolumeLock
from ..errors import (
    AppError,
    Conflict,
    FetchError,
    InvalidInput,
    NodeInstallError,
    ServiceUnavailable,
)
from ..model_lookup import resolve_folder_paths
from ..settings import Settings
from ..user_yaml import check_user_yaml
from ..workspace import Workspace
from .image import ImageEnv, probe, shares_dashboard_python
from .inventory import NodeInfo, Sources, scan
from .layer import Layer, NodeRecord, ensure_hook
from .names import check_name, node_path
from .pip import LineSink, PipResult, pip_install, raise_for
from .sources import Source, default_name, fetch, git, git_commit, git_dir, parse_source

log = logging.getLogger(__name__)
T = TypeVar("T")
GIT_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


def _noop(_line: str) -> None:
    return None


class NodeService:
    def __init__(
        self,
        settings: Settings,
        workspace: Workspace,
        *,
        pip_timeout: float = 900.0,
        git_timeout: float = 600.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.pip_timeout = pip_timeout
        self.git_timeout = git_timeout
        self.env = env  # the environment pip and the checks run with (None: this process's)
        self.volume_dir = workspace.custom_nodes
        root = settings.comfyui_root
        self.image_dir = root / "custom_nodes" if root is not None else None
        self.sources = Sources(workspace.cache / "nodes" / "sources.json")
        self._image: ImageEnv | None = None
        self.hook_problem: str | None = None

    # ---- the image and its layer -------------------------------------------------------------
    async def image_env(self) -> ImageEnv:
        """ComfyUI's Python, probed once per process; the layer hook written when missing."""
        if self._image is None:
            if not self.settings.comfyui_installed:
                raise ServiceUnavailable(
                    "ComfyUI is not installed here, so there is no Python to install node packages for",
                    hint="set COMFYUI_ROOT and COMFYUI_PYTHON (the image has both)",
                    state="not_installed",
                )
            if shares_dashboard_python(self.settings.comfyui_python):
                raise ServiceUnavailable(
                    "ComfyUI runs in the dashboard's own venv: node packages are not installed there",
                    hint="give ComfyUI its own venv (COMFYUI_PYTHON), as the image does",
                    state="shared_venv",
                )
            image = await probe(self.settings.comfyui_python)
            self.hook_problem = ensure_hook(image)
            if self.hook_problem:
                log.warning("custom nodes: %s", self.hook_problem)
            self._image = image
        return self._image

    async def layer(self) -> Layer:
        layer = Layer(self.workspace.python, await self.image_env())
        layer.ensure()
        return layer

    def lock(self) -> VolumeLock:
        return VolumeLock(self.workspace.cache / "locks" / "custom-nodes.lock")

    async def locked(self, body: Callable[[], Awaitable[T]], on_line: LineSink = _noop) -> T:
        lock = self.lock()
        owner = lock.owner()
        if owner:
            on_line(
                f"waiting for {owner.get('host')}:{owner.get('pid')}, which is changing the volume's nodes"
            )
        await lock.acquire()
        try:
            return await body()
        finally:
            await lock.release()

    # ---- listing -------------------------------------------------------------------------------
    def image_nodes(self) -> list[NodeInfo]:
        return scan(self.image_dir, "image") if self.image_dir is not None else []

    def volume_nodes(self) -> list[NodeInfo]:
        return scan(self.volume_dir, "volume")

    def node_folders(self) -> list[Path]:
        """Every custom-node folder ComfyUI will read: the image's, the volume's and any the
        user's own yaml adds (a node there must stay on the whitelist too)."""
        folders = [f for f in (self.image_dir, self.volume_dir) if f is not None]
        usable, _ = check_user_yaml(self.workspace.user_yaml)
        if usable and self.settings.comfyui_root is not None:
            try:
                table = resolve_folder_paths(
                    [self.workspace.user_yaml], self.settings.comfyui_root, self.workspace.output
                )
            except (AppError, OSError, ValueError):
                table = {}
            folders += [f for f in table.get("custom_nodes", []) if f not in folders]
        return folders

    def left_out(self, layer: Layer) -> list[str]:
        """Volume nodes whose requirements failed for this image (kept out of ComfyUI's start)."""
        records = layer.read_state()
        out = []
        for node in self.volume_nodes():
            rec = records.get(node.name)
            if rec is not None and not rec.ok and rec.hash == node.requirements_hash(layer.image.fingerprint):
                out.append(node.name)
        return out

    def whitelist_args(self, left_out: list[str]) -> list[str]:
        """ComfyUI's flags that load every node but the left-out ones ([] when none is left out)."""
        if not left_out or "--disable-all-custom-nodes" in self.settings.comfyui_extra_args:
            return []
        present = {n.name for folder in self.node_folders() for n in scan(folder, "")}
        names = sorted(present - set(left_out))
        return ["--disable-all-custom-nodes", *(["--whitelist-custom-nodes", *names] if names else [])]

    # ---- changes --------------------------------------------------------------------------------
    async def install(
        self,
        source_text: str,
        *,
        name: str | None = None,
        allow_script: bool = False,
        on_line: LineSink = _noop,
    ) -> dict[str, Any]:
        source = parse_source(source_text)
        node_name = check_name(name) if name else default_name(source)
        node_path(self.volume_dir, self.workspace.root, node_name, must_exist=False)
        return await self.locked(lambda: self._install(source, node_name, allow_script, on_line), on_line)

    async def _install(
        self, source: Source, name: str, allow_script: bool, on_line: LineSink
    ) -> dict[str, Any]:
        dest = node_path(self.volume_dir, self.workspace.root, name, must_exist=False)
        if dest.exists() or dest.is_symlink():
            raise Conflict(
                f"a node named '{name}' is already on the volume", hint=f"update it: nodes update {name}"
            )
        if any(n.name == name for n in self.image_nodes()):
            raise Conflict(
                f"the image already has a node named '{name}'",
                hint="the image's copy is loaded anyway; give another --name to install a second copy",
            )
        layer = await self.layer()
        staging = self._staging()
        try:
            on_line(f"fetching {source}")
            await fetch(source, staging, on_line=on_line, timeout=self.git_timeout)
            staged = NodeInfo(name, "volume", staging, True)
            await self._requirements(layer, staged, name, on_line)
            self.volume_dir.mkdir(parents=True, exist_ok=True)
            os.rename(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        node = NodeInfo(name, "volume", dest, True)
        try:
            await self._script(node, allow_script, on_line)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        self._record(layer, node, ok=True)
        self.sources.put(
            name, {"kind": source.kind, "source": source.location, "ref": source.ref, "at": time.time()}
        )
        on_line(f"installed {name} ({node.commit() or source.kind}); restart ComfyUI to load it")
        return {"name": name, "path": str(dest), "commit": node.commit(), "source": str(source)}

    async def update(
        self, name: str, *, ref: str | None = None, allow_script: bool = False, on_line: LineSink = _noop
    ) -> dict[str, Any]:
        node_path(self.volume_dir, self.workspace.root, name)
        if ref is not None and not GIT_REF_RE.match(ref):
            raise InvalidInput(
                f"'{ref[:100]}' is not a commit, tag or branch name", hint="e.g. main, v1.2.0, 0123abc"
            )
        return await self.locked(lambda: self._update(name, ref, allow_script, on_line), on_line)

    async def _update(
        self, name: str, ref: str | None, allow_script: bool, on_line: LineSink
    ) -> dict[str, Any]:
        path = node_path(self.volume_dir, self.workspace.root, name)
        node = NodeInfo(name, "volume", path, True)
        layer = await self.layer()
        if git_dir(path) is None:
            return await self._reinstall(node, layer, allow_script, on_line)
        old = git_commit(path)
        on_line(f"fetching {name} (now at {old})")
        await git("fetch", "--quiet", "--tags", "origin", cwd=path, on_line=on_line, timeout=self.git_timeout)
        if ref:
            await self._checkout(path, ref, on_line)
        else:
            try:
                await git(
                    "merge",
                    "--ff-only",
                    "--quiet",
                    "@{u}",
                    cwd=path,
                    on_line=on_line,
                    timeout=self.git_timeout,
                )
            except FetchError as exc:
                raise InvalidInput(
                    f"{name} cannot move forward by itself ({exc.message})",
                    hint=f"it is pinned or has local changes: give the commit, nodes update {name} --ref REF",
                ) from None
        try:
            await self._requirements(layer, node, name, on_line)
            await self._script(node, allow_script, on_line)
        except BaseException:
            if old:
                on_line(f"back to {old}")
                with contextlib.suppress(AppError):
                    await git("checkout", "--quiet", old, cwd=path, timeout=self.git_timeout)
            raise
        self._record(layer, node, ok=True)
        new = git_commit(path)
        on_line(
            f"{name}: {old} -> {new}"
            + ("; restart ComfyUI to load it" if new != old else " (already current)")
        )
        return {"name": name, "old": old, "commit": new, "changed": new != old}

    async def _checkout(self, path: Path, ref: str, on_line: LineSink) -> None:
        """A branch of origin as it is now (the local branch follows it), else a tag or a commit."""
        try:
            await git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{ref}", cwd=path)
        except FetchError:
            await git("checkout", "--quiet", ref, cwd=path, on_line=on_line, timeout=self.git_timeout)
            return
        await git("checkout", "--quiet", "-B", ref, f"origin/{ref}", cwd=path, on_line=on_line)

    async def _reinstall(
        self, node: NodeInfo, layer: Layer, allow_script: bool, on_line: LineSink
    ) -> dict[str, Any]:
        recorded = self.sources.get(node.name)
        if not recorded or recorded.get("kind") not in ("folder", "archive"):
            raise InvalidInput(
                f"{node.name} is not a git checkout and its source is not known",
                hint=f"remove it and install it again: nodes remove {node.name}; nodes install SOURCE",
            )
        source = parse_source(str(recorded["source"]))
        staging = self._staging()
        aside = node.path.with_name(f".{node.name}.old-{uuid.uuid4().hex[:8]}")
        try:
            await fetch(source, staging, on_line=on_line)
            await self._requirements(layer, NodeInfo(node.name, "volume", staging, True), node.name, on_line)
            os.rename(node.path, aside)
            os.rename(staging, node.path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
        await self._script(node, allow_script, on_line)
        self._record(layer, node, ok=True)
        on_line(f"{node.name}: copied again from {source}; restart ComfyUI to load it")
        return {"name": node.name, "commit": None, "changed": True}

    async def remove(self, name: str, *, on_line: LineSink = _noop) -> dict[str, Any]:
        node_path(self.volume_dir, self.workspace.root, name)
        return await self.locked(lambda: self._remove(name, on_line), on_line)

    async def _remove(self, name: str, on_line: LineSink) -> dict[str, Any]:
        path = node_path(self.volume_dir, self.workspace.root, name)
        if path.is_symlink():
            path.unlink()
        else:
            await asyncio.to_thread(shutil.rmtree, path)
        with contextlib.suppress(AppError):
            (await self.layer()).record(name, None)
        self.sources.put(name, None)
        on_line(f"removed {name}; its packages stay in the layer; restart ComfyUI to unload it")
        return {"name": name, "status": "removed"}

    # ---- helpers ----------------------------------------------------------------------------------
    def _staging(self) -> Path:
        base = self.workspace.cache / "nodes" / "staging"
        base.mkdir(parents=True, exist_ok=True)
        return base / uuid.uuid4().hex

    async def _requirements(self, layer: Layer, node: NodeInfo, name: str, on_line: LineSink) -> None:
        req = node.requirements
        if req is None:
            on_line(f"{name} has no requirements.txt")
            return
        on_line(f"installing {name}'s requirements into {layer.root}")
        result = await pip_install(layer, [req], on_line=on_line, timeout=self.pip_timeout, base_env=self.env)
        raise_for(result, name)

    async def _script(self, node: NodeInfo, allow: bool, on_line: LineSink) -> None:
        script = node.install_script
        if script is None:
            return
        if not allow:
            on_line(f"{node.name} has an install.py; not run (pass --allow-install-script to run it)")
            return
        layer = await self.layer()
        on_line(f"running {node.name}/install.py")
        env = layer.environment(self.env if self.env is not None else os.environ)
        proc = await asyncio.create_subprocess_exec(
            str(layer.image.python),
            str(script),
            cwd=node.path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdout is not None
        async for raw in proc.stdout:
            on_line(raw.decode("utf-8", "replace").rstrip())
        if await proc.wait() != 0:
            raise NodeInstallError(f"{node.name}/install.py failed with exit code {proc.returncode}")

    def _record(self, layer: Layer, node: NodeInfo, *, ok: bool, result: PipResult | None = None) -> None:
        layer.record(
            node.name,
            NodeRecord(
                hash=node.requirements_hash(layer.image.fingerprint),
                ok=ok,
                error="" if result is None else result.message,
                conflict=bool(result and result.conflict),
                by=f"{socket.gethostname()}:{os.getpid()}",
            ),
        )
