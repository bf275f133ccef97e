"""ComfyUI's node definitions (`GET /object_info`), with the last copy kept on the volume.

The converter needs the definitions of the running ComfyUI. They are 1.6 MB and change only when
custom nodes or model files change, so the last copy is kept at `workspace/cache/object_info.json`
(written atomically) and conversion works while ComfyUI is still starting, or not running.

    load_file(path)            a saved copy (.json or .json.gz); raises a clear error
    ObjectInfoStore            the copy on the volume: load(), save(), and get(fetch) / refresh(fetch)
                               with `fetch` the gateway's `node_definitions` (None: ComfyUI is
                               not reachable from here)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import AppError, InvalidInput, NotFound, ServiceUnavailable
from ..model_paths import atomic_write_text

CACHE_NAME = "object_info.json"
#: Asks the running ComfyUI for its node definitions (`ComfyUIGateway.node_definitions`).
Fetch = Callable[[], Awaitable[dict[str, Any]]]


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


class ObjectInfoStore:
    """The copy of `/object_info` on the volume, refreshed from ComfyUI on request."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / CACHE_NAME
        self._memory: dict[str, Any] | None = None
        self._mtime: float | None = None
        self.fetches = 0  # successful fetches from ComfyUI, so a caller can tell fresh from kept

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

    async def refresh(self, fetch: Fetch | None) -> dict[str, Any]:
        """Fetch from the running ComfyUI and keep the copy."""
        if fetch is None:
            raise ServiceUnavailable("ComfyUI is not reachable from here", state="unreachable")
        try:
            data = _check(await fetch(), "ComfyUI's /object_info")
        except InvalidInput as exc:
            raise ServiceUnavailable(exc.message, hint="wait until ComfyUI has started") from None
        self.save(data)
        self.fetches += 1
        return data

    async def get(self, fetch: Fetch | None, *, refresh: bool = False) -> dict[str, Any]:
        """The definitions: fetched when asked (or when there is no copy), else the saved copy.

        When ComfyUI cannot answer, the saved copy is used; without one this raises
        ServiceUnavailable saying how to get definitions.
        """
        if not refresh:
            saved = self.load()
            if saved is not None:
                return saved
        try:
            return await self.refresh(fetch)
        except AppError as exc:  # not reachable, 503, or an answer that is no /object_info
            saved = self.load()
            if saved is not None:
                return saved
            raise ServiceUnavailable(
                f"no node definitions: {self.path} does not exist and {exc.message}",
                hint="start ComfyUI once (its definitions are then kept), or pass --object-info FILE",
            ) from None
