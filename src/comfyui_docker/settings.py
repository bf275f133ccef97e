"""Every setting of the runtime, typed, read from the environment in one place.

Each setting is declared once, as a `Spec` in `SPECS` (setting_specs.py): variable name and
aliases, parser, typed default (or a `Computed` one), the default as the docs show it, help text.
`Settings.from_env()` is a loop over the specs (plus one rule across settings: no two services on
one port), and the README's settings table is written from them (`make docs`, i.e. `python -m
comfyui_docker.settings_doc README.md`; a test fails while the README differs).

To add a setting: a `Spec` in setting_specs.py with a parser from setting_parsers.py (or a new one
there that raises SettingsError with a hint), a field of the same name and type on `Settings` (a
test checks the two agree), then `make docs`.

Nothing here runs at import time; `Settings.from_env()` is the only reader of the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .setting_parsers import PRESET_ID_RE, GpuChoice, Secret, display
from .setting_specs import IMAGE_WORKSPACE, SPECS, Computed, Spec, default_comfyui_python

__all__ = [
    "IMAGE_WORKSPACE",
    "PRESET_ID_RE",
    "SPECS",
    "Computed",
    "GpuChoice",
    "Secret",
    "Settings",
    "Spec",
    "default_comfyui_python",
    "display",
]


@dataclass(frozen=True)
class Settings:
    """The values of SPECS, one field per spec (defaults live in the specs: build with from_env)."""

    workspace_root: Path
    comfyui_root: Path | None
    comfyui_python: Path
    dashboard_port: int
    comfyui_port: int
    comfyui_internal_port: int
    dashboard_internal_port: int
    dashboard_host: str
    enable_nginx: bool
    preset_download: tuple[str, ...]
    image_preset_download: tuple[str, ...]
    audio_preset_download: tuple[str, ...]
    enable_preset_manager: bool
    access_password: Secret
    api_token: Secret
    time_zone: str
    hf_token: Secret
    civitai_token: Secret
    comfyui_extra_args: tuple[str, ...]
    comfyui_gpus: GpuChoice
    comfyui_instance_ram_gb: int
    comfyui_test_gpus: tuple[int, ...]
    comfyui_pass_env: tuple[str, ...]
    model_hosts: tuple[str, ...]
    download_connections: int
    download_parallel_files: int
    cors_origins: tuple[str, ...]
    log_level: str
    public_key: str
    runpod_pod_id: str

    # ---- derived values -------------------------------------------------
    @property
    def startup_presets(self) -> tuple[str, ...]:
        """Every preset id named by the three *_PRESET_DOWNLOAD variables, in order, once."""
        seen: list[str] = []
        for pid in (
            *self.preset_download,
            *self.image_preset_download,
            *self.audio_preset_download,
        ):
            if pid not in seen:
                seen.append(pid)
        return tuple(seen)

    @property
    def password_set(self) -> bool:
        return bool(self.access_password)

    @property
    def comfyui_url(self) -> str:
        """Where ComfyUI listens (loopback only): the one place its address is built."""
        return f"http://127.0.0.1:{self.comfyui_internal_port}"

    @property
    def comfyui_installed(self) -> bool:
        return self.comfyui_root is not None and (self.comfyui_root / "main.py").is_file()

    def token_for_host(self, host: str) -> Secret | None:
        """The token a download from `host` may carry (never sent to any other host)."""
        host = host.lower().rstrip(".")
        if (host == "huggingface.co" or host.endswith(".huggingface.co")) and self.hf_token:
            return self.hf_token
        if (host == "civitai.com" or host.endswith(".civitai.com")) and self.civitai_token:
            return self.civitai_token
        return None

    def public_items(self) -> dict[str, Any]:
        """Every setting by its variable name, secrets masked: safe to log or show."""
        out: dict[str, Any] = {}
        for spec in SPECS:
            value = getattr(self, spec.attr)
            out[spec.env] = spec.show(value) if spec.show is not None else display(value)
        return out

    # ---- construction ---------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        """Read every setting from `env` (default: os.environ); raise SettingsError on a bad value."""
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        values: dict[str, Any] = {}
        for spec in SPECS:
            values[spec.attr] = spec.read(env, values, cwd)
        settings = cls(**values)
        _check_ports(settings)
        return settings


def _check_ports(settings: Settings) -> None:
    """Each public and loopback port belongs to one service."""
    ports = {
        "DASHBOARD_PORT": settings.dashboard_port,
        "COMFYUI_PORT": settings.comfyui_port,
        "COMFYUI_INTERNAL_PORT": settings.comfyui_internal_port,
    }
    if settings.enable_nginx:
        ports["DASHBOARD_INTERNAL_PORT"] = settings.dashboard_internal_port
    seen_ports: dict[int, str] = {}
    for var, port in ports.items():
        if port in seen_ports:
            raise SettingsError(
                var,
                f"port {port} is already used by {seen_ports[port]}",
                hint="give each service its own port",
            )
        seen_ports[port] = var
    for gpu in settings.comfyui_gpus.indexes:  # GPU n's ComfyUI listens on COMFYUI_INTERNAL_PORT + n
        check_instance_port(settings, gpu, seen_ports)


def check_instance_port(settings: Settings, gpu: int, taken: Mapping[int, str] | None = None) -> int:
    """The loopback port of GPU `gpu`'s ComfyUI; SettingsError when it is out of range or taken."""
    port = settings.comfyui_internal_port + gpu
    if taken is None:
        taken = {settings.dashboard_port: "DASHBOARD_PORT", settings.comfyui_port: "COMFYUI_PORT"}
        if settings.enable_nginx:
            taken = {**taken, settings.dashboard_internal_port: "DASHBOARD_INTERNAL_PORT"}
    owner = taken.get(port) if gpu else None
    if port > 65535 or owner:
        why = "above 65535" if port > 65535 else f"already used by {owner}"
        raise SettingsError(
            "COMFYUI_GPUS",
            f"GPU {gpu}'s ComfyUI would listen on port {port}, {why}",
            hint="set COMFYUI_INTERNAL_PORT so that COMFYUI_INTERNAL_PORT + n is free for every GPU n",
        )
    return port
