"""Where ComfyUI finds a model: its loading rules re-implemented (COMFYUI.md §5).

`resolve_folder_paths` builds the folder table ComfyUI builds from its defaults and the yaml files
it is given; `list_models` is what `GET /models/<type>` lists, `find_model` the file a loader
opens. Tests, `doctor` and the Generate page use them to prove a file on the volume is found
without a running ComfyUI.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelPathsError
from .model_paths import CANONICAL_TYPES, LEGACY_ALIASES


def yaml_folders(value: str, base_path: str | None, yaml_dir: Path) -> list[Path]:
    """The folders one yaml value names: one per line, under `base_path` (itself relative to the
    yaml's folder) unless absolute."""
    out = []
    for raw in value.split("\n"):
        raw = raw.strip()
        if not raw:
            continue
        if base_path is not None:
            base = Path(base_path)
            if not base.is_absolute():
                base = yaml_dir / base
            full = base / raw  # an absolute raw value replaces base
        else:
            full = Path(raw) if Path(raw).is_absolute() else yaml_dir / raw
        out.append(Path(os.path.normpath(full)))
    return out


def resolve_folder_paths(
    yaml_files: Iterable[Path], comfyui_root: Path, output_dir: Path
) -> dict[str, list[Path]]:
    """The effective folder table ComfyUI builds from its defaults and these yaml files."""
    table: dict[str, list[Path]] = {
        name: [comfyui_root / d for d in defaults] for name, (defaults, _) in CANONICAL_TYPES.items()
    }
    for yfile in yaml_files:
        data: Any = yaml.safe_load(yfile.read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ModelPathsError(f"{yfile}: top level is not a mapping (ComfyUI would crash)")
        for _section, conf in data.items():
            if conf is None:
                continue
            if not isinstance(conf, Mapping):
                raise ModelPathsError(f"{yfile}: section {_section!r} is not a mapping")
            base = conf.get("base_path")
            base_path = os.path.expandvars(os.path.expanduser(str(base))) if base is not None else None
            is_default = bool(conf.get("is_default", False))
            for key, value in conf.items():
                if key in ("base_path", "is_default"):
                    continue
                if not isinstance(value, str):
                    raise ModelPathsError(f"{yfile}: {key} is not a string (ComfyUI would crash)")
                ctype = LEGACY_ALIASES.get(str(key), str(key))
                folders = yaml_folders(value, base_path, yfile.parent)
                current = table.setdefault(ctype, [])
                for folder in folders:
                    if is_default:
                        current.insert(0, folder)
                    else:
                        current.append(folder)
    for sub, ctype in (
        ("checkpoints", "checkpoints"),
        ("clip", "text_encoders"),
        ("vae", "vae"),
        ("diffusion_models", "diffusion_models"),
        ("loras", "loras"),
    ):
        table[ctype].append(output_dir / sub)
    return table


def extensions_for(ctype: str) -> frozenset[str] | None:
    entry = CANONICAL_TYPES.get(LEGACY_ALIASES.get(ctype, ctype))
    return entry[1] if entry else None


def list_models(table: Mapping[str, list[Path]], ctype: str) -> list[str]:
    """What ComfyUI's `GET /models/<ctype>` would list: sorted union, recursive, filtered."""
    exts = extensions_for(ctype)
    names: set[str] = set()
    for folder in table.get(ctype, []):
        if not folder.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            rel_dir = Path(dirpath).relative_to(folder)
            for fname in filenames:
                if exts is not None and not _ext_ok(fname, exts):
                    continue
                rel = (rel_dir / fname).as_posix()
                names.add(rel.removeprefix("./"))
    return sorted(names)


def _ext_ok(fname: str, exts: frozenset[str]) -> bool:
    if "folder" in exts:
        return False
    suffix = Path(fname).suffix.lower()
    if "" in exts:
        return suffix == ""
    return suffix in exts


def find_model(table: Mapping[str, list[Path]], ctype: str, name: str) -> Path | None:
    """The file a loader would open for `name` (first folder wins), like folder_paths.get_full_path."""
    for folder in table.get(LEGACY_ALIASES.get(ctype, ctype), []):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
