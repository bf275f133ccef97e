"""The preset catalog's data types: a preset, its files, its variants, its requirements.

A preset names the files ComfyUI needs for one model family. Each file has a target `path`
(`<canonical folder>/<file name>`, relative to the volume's `models/`) and a download `url`.
`size` is exact when the catalog gives a number of bytes, approximate when it gives a string
such as "4.8GB" (the existing images' catalogs); an exact size is enforced after download, an
approximate one only plans disk space and progress.

Variants (`fp16`, `fp8`, `gguf_q4`...) add their own files to the preset's shared ones; an
install names one variant or gets the preset's default.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import PresetNotFound
from ..model_paths import canonical_folder

PRESET_ID_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
VARIANT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PRESET_TYPES = ("video", "image", "audio", "other")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^~?\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$")


def parse_size(value: Any) -> tuple[int, bool]:
    """(bytes, exact) from an int or a string like "4.8GB", "512 MiB", "~1.2GB"; ValueError if bad.

    An int, or a string of digits only, is exact; anything with a unit is approximate.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value, True
    if isinstance(value, float):
        raise ValueError(f"{value!r} is not a whole number of bytes; write it like '4.8GB'")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    m = _SIZE_RE.match(value.strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a size; use bytes (123456) or a string like '4.8GB'")
    number, unit = m.group(1), m.group(2).lower()
    if unit in ("", "b") and "." not in number and not value.strip().startswith("~"):
        return int(number), True
    return int(float(number) * _UNITS[unit]), False


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


@dataclass(frozen=True)
class FileSpec:
    """One file to put under models/: where, from where, and what it must be."""

    path: str  # "<canonical folder>/[sub/]<file name>", relative to models/
    url: str
    size: int | None = None
    size_exact: bool = False
    sha256: str | None = None
    optional: bool = False

    @property
    def folder(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def exact_size(self) -> int | None:
        return self.size if self.size_exact else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "url": self.url,
            "size": self.size,
            "size_exact": self.size_exact,
            "sha256": self.sha256,
            "optional": self.optional,
            "host": self.host,
        }


@dataclass(frozen=True)
class Variant:
    name: str
    description: str = ""
    files: tuple[FileSpec, ...] = ()


@dataclass(frozen=True)
class Requirements:
    vram_gb: float | None = None
    disk_gb: float | None = None


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    type: str
    category: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    files: tuple[FileSpec, ...] = ()
    variants: dict[str, Variant] = field(default_factory=dict)
    default_variant: str | None = None
    gated: bool = False
    licence_url: str | None = None
    source: str = ""  # "presets.yaml:12": where it was defined

    def variant_names(self) -> list[str]:
        return list(self.variants)

    def files_for(self, variant: str | None = None, *, include_optional: bool = True) -> list[FileSpec]:
        """The files an install of `variant` (None: the default variant) puts on the volume."""
        out = list(self.files)
        name = variant or self.default_variant
        if name is not None and name in self.variants:
            out += list(self.variants[name].files)
        if not include_optional:
            out = [f for f in out if not f.optional]
        seen: set[str] = set()
        unique = []
        for f in out:
            if f.path not in seen:
                seen.add(f.path)
                unique.append(f)
        return unique

    def all_files(self) -> list[FileSpec]:
        """Every file of every variant (for ownership and 'who ships this file')."""
        out = list(self.files)
        for v in self.variants.values():
            out += list(v.files)
        return out

    def total_size(self, variant: str | None = None) -> int:
        return sum(f.size or 0 for f in self.files_for(variant))


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str
    preset_id: str | None = None
    level: str = "error"  # "error": entry skipped; "warning": loaded anyway

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where} {self.field}: {self.message}" if self.field else f"{where} {self.message}"


@dataclass
class Catalog:
    presets: dict[str, Preset] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def close_matches(self, preset_id: str, n: int = 3) -> list[str]:
        key = preset_id.strip().upper()
        return difflib.get_close_matches(key, list(self.presets), n=n, cutoff=0.5)

    def get(self, preset_id: str) -> Preset:
        """The preset `preset_id` names (any case); PresetNotFound with the close ones otherwise."""
        key = preset_id.strip().upper()
        preset = self.presets.get(key)
        if preset is None:
            close = self.close_matches(key)
            hint = f"did you mean {', '.join(close)}?" if close else "run `comfyui-docker presets list`"
            raise PresetNotFound(f"unknown preset {preset_id!r}", hint=hint, close_matches=close)
        return preset

    def owners_of(self, rel_path: str) -> list[str]:
        """The presets with a file at `rel_path` (under models/)."""
        rel = rel_path.strip("/").removeprefix("models/")
        return [p.id for p in self.presets.values() if any(f.path == rel for f in p.all_files())]

    def providers(self, folder: str, filename: str) -> list[str]:
        """The presets that provide `filename` (a name or a path under the folder) for a loader of
        `folder` (any name ComfyUI reads for it)."""
        canon = canonical_folder(folder) or folder
        out = []
        for p in self.presets.values():
            for f in p.all_files():
                if f.folder == canon and (f.path.split("/", 1)[1] == filename or f.filename == filename):
                    out.append(p.id)
                    break
        return out
