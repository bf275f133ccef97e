"""Model folder table of the fake ComfyUI, loaded the way ComfyUI 0.33 loads it (COMFYUI.md §4-§5).

The yaml loader is deliberately literal: the same bad forms raise the same Python errors
(`'NoneType' object is not iterable`, `string indices must be integers`, `'list' object has no
attribute 'split'`, ...), so a supervisor sees the fake crash exactly where the real one does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from comfyui_docker.model_lookup import list_models
from comfyui_docker.model_paths import CANONICAL_TYPES, LEGACY_ALIASES, PT_EXTENSIONS

log = logging.getLogger("fake_comfy")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


class FolderTable:
    """type -> folders (in precedence order) and the type's extension filter."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.paths: dict[str, list[str]] = {
            name: [str(base / d) for d in defaults] for name, (defaults, _) in CANONICAL_TYPES.items()
        }
        self.created: list[str] = []  # types created by yaml keys, in order

    def add(self, key: str, path: str, is_default: bool) -> None:
        ctype = LEGACY_ALIASES.get(key, key)
        if ctype not in self.paths:
            self.paths[ctype] = []
            self.created.append(ctype)
        paths = self.paths[ctype]
        if path in paths:
            if is_default and paths[0] != path:
                paths.remove(path)
                paths.insert(0, path)
        elif is_default:
            paths.insert(0, path)
        else:
            paths.append(path)

    def load_yaml(self, yaml_path: str) -> None:
        """ComfyUI's `load_extra_path_config`, step for step (crashes included)."""
        with open(yaml_path, encoding="utf-8") as stream:
            config = yaml.safe_load(stream)
        yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
        for c in config:
            conf = config[c]
            if conf is None:
                continue
            base_path = None
            if "base_path" in conf:
                base_path = conf.pop("base_path")
                base_path = os.path.expandvars(os.path.expanduser(base_path))
                if not os.path.isabs(base_path):
                    base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
            is_default = False
            if "is_default" in conf:
                is_default = bool(conf.pop("is_default"))
            for x in conf:
                for y in conf[x].split("\n"):
                    if len(y) == 0:
                        continue
                    full_path = y
                    if base_path:
                        full_path = os.path.join(base_path, full_path)
                    elif not os.path.isabs(full_path):
                        full_path = os.path.abspath(os.path.join(yaml_dir, y))
                    normalized = os.path.normpath(full_path)
                    log.info("\x1b[32m[INFO]\x1b[0m Adding extra search path %s %s", x, normalized)
                    self.add(x, normalized, is_default)

    def add_output_extras(self, output_dir: Path) -> None:
        for sub, key in (
            ("checkpoints", "checkpoints"),
            ("clip", "clip"),
            ("vae", "vae"),
            ("diffusion_models", "diffusion_models"),
            ("loras", "loras"),
        ):
            self.add(key, str(output_dir / sub), False)

    # ---- queries --------------------------------------------------------------------------
    def model_types(self) -> list[str]:
        return [*CANONICAL_TYPES, *self.created]

    def listable(self, folder: str) -> bool:
        return folder in self.paths and folder not in LEGACY_ALIASES

    def list(self, folder: str) -> list[str]:
        ctype = LEGACY_ALIASES.get(folder, folder)
        return list_models({ctype: [Path(p) for p in self.paths.get(ctype, [])]}, ctype)

    def find(self, folder: str, name: str) -> Path | None:
        ctype = LEGACY_ALIASES.get(folder, folder)
        for p in self.paths.get(ctype, []):
            cand = Path(p) / name
            if cand.is_file():
                return cand
        return None

    def extensions(self, folder: str) -> list[str]:
        entry = CANONICAL_TYPES.get(folder)
        if entry is None or entry[1] is None:
            return []
        return sorted(entry[1])

    def experiment_models(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for name in self.model_types():
            if name in ("configs", "custom_nodes"):
                continue
            out.append({"name": name, "folders": self.paths[name], "extensions": self.extensions(name)})
        return out

    def experiment_files(self, folder: str) -> list[dict[str, object]]:
        exts = CANONICAL_TYPES.get(folder, ((), None))[1]
        out: list[dict[str, object]] = []
        for index, root in enumerate(self.paths.get(folder, [])):
            if not os.path.isdir(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                dirnames[:] = [d for d in dirnames if d != ".git"]
                for fname in filenames:
                    if fname.startswith("."):
                        continue
                    if exts is not None and Path(fname).suffix.lower() not in exts:
                        continue
                    full = os.path.join(dirpath, fname)
                    st = os.stat(full)
                    out.append(
                        {
                            "name": os.path.relpath(full, root).replace(os.sep, "/"),
                            "pathIndex": index,
                            "modified": st.st_mtime,
                            "created": st.st_ctime,
                            "size": st.st_size,
                        }
                    )
        return out


def input_images(input_dir: Path) -> list[str]:
    """`LoadImage.image` choices: image files at the top level of the input dir."""
    if not input_dir.is_dir():
        return []
    return sorted(
        e.name for e in os.scandir(input_dir) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
    )


__all__ = ["PT_EXTENSIONS", "FolderTable", "input_images"]
