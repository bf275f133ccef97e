"""Parsers for setting values: `(variable, raw text) -> typed value`, or SettingsError naming
the variable with a hint that says what to write instead. `settings.SPECS` picks one per setting.

The raw text is never empty here (an unset or empty variable gives the spec's default).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .downloads.hosts import parse_hosts
from .errors import SettingsError

PRESET_ID_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


class Secret:
    """A string that never shows itself in `repr`, `str`, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def display(value: Any) -> str:
    """A setting's value as text that is safe to log or show (secrets say only whether set)."""
    if isinstance(value, Secret):
        return "set" if value else ""
    if isinstance(value, tuple):
        return ",".join(value)
    return "" if value is None else str(value)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def boolean(var: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise SettingsError(var, f"{raw!r} is not a boolean", hint="use true or false")


def _int(var: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(
            var, f"{raw!r} is not a whole number", hint=f"use a number from {lo} to {hi}"
        ) from None
    if not lo <= value <= hi:
        raise SettingsError(var, f"{value} is out of range", hint=f"use a number from {lo} to {hi}")
    return value


def whole_number(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(var: str, raw: str) -> int:
        return _int(var, raw, lo, hi)

    return parse


def abs_path(var: str, raw: str) -> Path:
    path = Path(raw.strip())
    if not path.is_absolute():
        raise SettingsError(
            var, f"{raw!r} is a relative path", hint="give an absolute path such as /workspace"
        )
    return path


def preset_ids(var: str, raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in raw.replace(";", ",").split(","):
        pid = part.strip().upper()
        if not pid:
            continue
        if not PRESET_ID_RE.match(pid):
            raise SettingsError(
                var,
                f"{part.strip()!r} is not a preset id",
                hint="ids look like WAN_22_5B_TIV2; separate them with commas",
            )
        if pid not in out:
            out.append(pid)
    return tuple(out)


def csv(var: str, raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def text(var: str, raw: str) -> str:
    return raw.strip()


def secret(var: str, raw: str) -> Secret:
    return Secret(raw)


def token(var: str, raw: str) -> Secret:
    return Secret(raw.strip())


def time_zone(var: str, raw: str) -> str:
    tz = raw.strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            var,
            f"{tz!r} is not a known time zone",
            hint="use an IANA name such as Etc/UTC or Europe/Berlin",
        ) from None
    return tz


def shell_words(var: str, raw: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise SettingsError(var, f"cannot be split: {exc}", hint="check the quotes") from None


def log_level(var: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise SettingsError(var, f"{level!r} is not a log level", hint="use DEBUG, INFO, WARNING or ERROR")
    return level


port = whole_number(1, 65535)


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NEVER_PASSED = frozenset({"ACCESS_PASSWORD", "API_TOKEN"})


def env_names(var: str, raw: str) -> tuple[str, ...]:
    """Names of environment variables, never the dashboard's own secrets."""
    names = csv(var, raw)
    for name in names:
        if not ENV_NAME_RE.match(name):
            raise SettingsError(var, f"{name!r} is not a variable name", hint="separate names with commas")
        if name in NEVER_PASSED:
            raise SettingsError(
                var, f"{name} is the dashboard's own secret", hint="ComfyUI and its custom nodes never get it"
            )
    return names


def model_hosts(var: str, raw: str) -> tuple[str, ...]:
    """Host names or IP addresses (lower case, canonical), as the model-host allow-list takes them."""
    hosts, bad = parse_hosts(raw)
    if bad:
        raise SettingsError(
            var, f"{bad[0]!r} is not a host name", hint="list host names such as huggingface.co, no URLs"
        )
    return hosts


@dataclass(frozen=True)
class GpuChoice:
    """COMFYUI_GPUS: empty (one ComfyUI that sees every GPU), `all`, or GPU indexes (`0,1,3`)."""

    every: bool = False
    indexes: tuple[int, ...] = ()

    @property
    def per_gpu(self) -> bool:
        """Whether ComfyUI runs once per GPU (anything but the empty default)."""
        return self.every or bool(self.indexes)

    def __str__(self) -> str:
        return "all" if self.every else ",".join(str(i) for i in self.indexes)


MAX_GPU_INDEX = 63


def gpu_choice(var: str, raw: str) -> GpuChoice:
    """`all`, or comma-separated GPU indexes as nvidia-smi numbers them (each once)."""
    text_ = raw.strip().lower()
    if text_ == "all":
        return GpuChoice(every=True)
    out: list[int] = []
    for part in (p.strip() for p in text_.split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) > MAX_GPU_INDEX:
            raise SettingsError(
                var,
                f"{part!r} is not a GPU index",
                hint="write all, or GPU numbers as nvidia-smi shows them (e.g. 0,1,3), or leave it empty",
            )
        if int(part) in out:
            raise SettingsError(var, f"GPU {part} is named twice", hint="name each GPU once")
        out.append(int(part))
    return GpuChoice(indexes=tuple(out))


TEST_GPU_GIB = 24


def declared_gpus(var: str, raw: str) -> tuple[int, ...]:
    """`N` or `NxGIB` (e.g. `2`, `4x80`): N declared GPUs of GIB GiB each (24 by default)."""
    count, _, gib = raw.strip().lower().partition("x")
    try:
        n = int(count)
        size = int(gib) if gib else TEST_GPU_GIB
    except ValueError:
        raise SettingsError(
            var, f"{raw!r} is not a GPU count", hint="write a count, e.g. 2, or count x GiB, e.g. 4x80"
        ) from None
    if not 0 <= n <= MAX_GPU_INDEX + 1 or not 1 <= size <= 1024:
        raise SettingsError(
            var, f"{raw!r} is out of range", hint=f"0 to {MAX_GPU_INDEX + 1} GPUs of 1 to 1024 GiB"
        )
    return (size,) * n
