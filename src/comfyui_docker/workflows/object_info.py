"""ComfyUI's node definitions (`GET /object_info`), with the last copy kept on the volume.

The converter needs the definitions of the running ComfyUI. They are 1.6 MB and change only when
custom nodes or model files change, so the last copy is kept at `workspace/cache/object_info.json`
(written atomically) and conversion works while ComfyUI is still starting, or not running.

    load_file(path)            a saved copy (.json or .json.gz); raises a clear error
    ObjectInfoStore            the copy on the volume: load(), save(), refresh() from ComfyUI
    fetch(base_url)            GET /object_info from a running ComfyUI
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import InvalidInput, NotFound, ServiceUnavailable
from ..model_paths import atomic_write_text
from ..settings import Settings
from ..workspace import Workspace

CACHE_NAME = "object_info.json"
FETCH_TIMEOUT_S = 30.0


def _check(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        raise InvalidInput(
            f"{source} is not ComfyUI's /object_info (expected an object keyed by node class)",
            hint="save it with: curl http://127.0.0.1:8188/object_info > object_info.json",
        )
    sample = next(iter(data.values()))
    if not isinstance(sample, Mapping) or "input" not in sample:
        raise InvalidInput(
            f"{source} does not look like ComfyUI's /object_info (entries have no 'input')",
            hint="pass the full response of GET /object_info",
        )
    return data


def load_file(path: Path) -> dict[str, Any]:
    """Node definitions from a saved `/object_info` response (plain or gzip-compressed JSON)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist", hint="check the --object-info path") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InvalidInput(f"{path} is a broken gzip file: {exc}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    return _check(data, str(path))


async def fetch(
    base_url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[str, Any]:
    """`GET {base_url}/object_info` from a running ComfyUI."""
    url = base_url.rstrip("/") + "/object_info"
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                raise ServiceUnavailable(
                    f"ComfyUI answered {resp.status} to GET /object_info",
                    hint="wait until ComfyUI has started (comfyui-docker health --ready)",
                )
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(
            f"ComfyUI is not reachable at {base_url} ({exc.__class__.__name__})",
            hint="start it (comfyui-docker start) or pass --object-info FILE",
        ) from None
    finally:
        if own:
            await client.close()
    return _check(data, url)


class ObjectInfoStore:
    """The copy of `/object_info` on the volume, refreshed from ComfyUI on request."""

    def __init__(self, cache_dir: Path, base_url: str) -> None:
        self.path = cache_dir / CACHE_NAME
        self.base_url = base_url
        self._memory: dict[str, Any] | None = None
        self._mtime: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectInfoStore:
        cache = Workspace(settings.workspace_root).cache
        return cls(cache, f"http://127.0.0.1:{settings.comfyui_internal_port}")

    def load(self) -> dict[str, Any] | None:
        """The saved copy, or None when there is none yet (re-read only when the file changed)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        if self._memory is None or mtime != self._mtime:
            self._memory = load_file(self.path)
            self._mtime = mtime
        return self._memory

    def save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, separators=(",", ":")))
        self._memory = dict(data)
        self._mtime = self.path.stat().st_mtime

    async def refresh(self, session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
        """Fetch from the running ComfyUI and keep the copy."""
        data = await fetch(self.base_url, session=session)
        self.save(data)
        return data

    async def get(
        self, *, refresh: bool = False, session: aiohttp.ClientSession | None = None
    ) -> dict[str, Any]:
        """The definitions: fetched when asked (or when there is no copy), else the saved copy."""
        if not refresh:
            saved = self.load()
            if saved is not None:
                return saved
        try:
            return await self.refresh(session)
        except ServiceUnavailable as exc:
            saved = self.load()
            if saved is not None:
                return saved
            raise ServiceUnavailable(
                f"no node definitions: {self.path} does not exist and {exc.message}",
                hint="start ComfyUI once (its definitions are then kept), or pass --object-info FILE",
            ) from None
