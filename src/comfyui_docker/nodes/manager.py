"""ComfyUI-Manager (ComfyUI 0.33's `comfyui_manager` pip package, `--enable-manager`) set up for
the volume.

- Where it installs nodes: `folder_paths.get_folder_paths("custom_nodes")[0]` (its
  `get_default_custom_nodes_path`). The generated yaml gives `/workspace/custom_nodes` its own
  section with `is_default: true`, which puts it first (model_paths.py).
- How it installs their requirements: `sys.executable -m pip install ...`, or `uv pip install`
  when its config says `use_uv` - and with no config file at all it picks uv whenever uv is
  importable, which it is (uv is one of its own requirements). uv cannot install into the layer
  (layer.py), pip can: with `PIP_PREFIX` and `PIP_CONSTRAINT` in ComfyUI's environment its pip
  installs land in the layer, pinned to the image. So its config
  (`/workspace/user/__manager/config.ini`, under `--user-directory`) gets `use_uv = False`; every
  other key stays as the user or the manager left it.
"""

from __future__ import annotations

import configparser
import io
from pathlib import Path

from ..model_paths import atomic_write_text


def config_path(user_dir: Path) -> Path:
    return user_dir / "__manager" / "config.ini"


def ensure_pip(user_dir: Path) -> bool:
    """Set `use_uv = False` in the manager's config. Returns True when the file was changed."""
    path = config_path(user_dir)
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        config = configparser.ConfigParser(strict=False, interpolation=None)  # rewritten below
    if not config.has_section("default"):
        config.add_section("default")
    if config.get("default", "use_uv", fallback="").strip().lower() == "false":
        return False
    config.set("default", "use_uv", "False")
    out = io.StringIO()
    config.write(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, out.getvalue())
