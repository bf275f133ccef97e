"""ComfyUI-Docker: the runtime inside the image (start-up, supervision, presets, dashboard)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("comfyui-docker")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0+unknown"
