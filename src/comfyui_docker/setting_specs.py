"""Every setting, declared once: a `Spec` per variable in `SPECS`.

A spec has the variable's name and aliases, its parser (setting_parsers.py), its typed default (or
a `Computed` one, from the machine or from settings read before it), the default as the docs show
it, and its help text. `Settings.from_env()` (settings.py) is a loop over these; the README's table
is written from them (settings_doc.py).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from . import setting_parsers as parse
from .downloads.hosts import DEFAULT_MODEL_HOSTS
from .setting_parsers import GpuChoice, Secret, display

IMAGE_WORKSPACE = Path("/workspace")
IMAGE_COMFYUI_ROOT = Path("/app/comfyui/ComfyUI")


T = TypeVar("T")


@dataclass(frozen=True)
class Computed(Generic[T]):
    """A default that depends on the machine or on a setting read before it.

    `make(values, cwd)` gets the settings read so far (by attribute) and the working folder.
    """

    make: Callable[[Mapping[str, Any], Path], T]


@dataclass(frozen=True)
class Spec(Generic[T]):
    """One environment variable, declared once: its parser, typed default, docs and help.

    `parse(variable, raw)` turns a non-empty value into the setting or raises SettingsError
    naming the variable. An unset or empty variable (and each alias) gives `default`. `doc` is the
    default as the docs show it when the value alone does not say it (a computed default, or one
    the image changes). `show` writes a value for `Settings.public_items` when `display` is not
    the right form.
    """

    attr: str
    env: str
    parse: Callable[[str, str], T]
    default: T | Computed[T]
    help: str
    doc: str | None = None
    aliases: tuple[str, ...] = ()
    secret: bool = False
    show: Callable[[T], str] | None = None

    def raw(self, env: Mapping[str, str]) -> str | None:
        """The first non-empty value of the variable or one of its aliases."""
        for name in (self.env, *self.aliases):
            value = env.get(name)
            if value:
                return value
        return None

    def read(self, env: Mapping[str, str], values: Mapping[str, Any], cwd: Path) -> T:
        raw = self.raw(env)
        if raw is not None:
            return self.parse(self.env, raw)
        if isinstance(self.default, Computed):
            return self.default.make(values, cwd)
        return self.default

    @property
    def doc_default(self) -> str:
        """The default as the settings table shows it ("" for none)."""
        if self.doc is not None:
            return self.doc
        if isinstance(self.default, Computed):
            raise ValueError(f"{self.env}: a computed default needs `doc`")
        value = self.default
        return str(value).lower() if isinstance(value, bool) else display(value)


# ---- computed defaults --------------------------------------------------------------------------


def default_comfyui_python(comfyui_root: Path | None) -> Path:
    """The venv the image puts beside COMFYUI_ROOT, else the current interpreter."""
    if comfyui_root is not None:
        for cand in (comfyui_root.parent / "venv", comfyui_root / "venv", comfyui_root / ".venv"):
            py = cand / "bin" / "python"
            if py.exists():
                return py
    return Path(sys.executable)


def _default_workspace(values: Mapping[str, Any], cwd: Path) -> Path:
    return IMAGE_WORKSPACE if IMAGE_WORKSPACE.is_dir() else (cwd / "workspace").resolve()


def _default_comfyui_root(values: Mapping[str, Any], cwd: Path) -> Path | None:
    return IMAGE_COMFYUI_ROOT if (IMAGE_COMFYUI_ROOT / "main.py").is_file() else None


def _default_comfyui_python(values: Mapping[str, Any], cwd: Path) -> Path:
    return default_comfyui_python(values["comfyui_root"])


# ---- the settings, in the order they are read (a computed default sees those above it) ---------

_NO_SECRET = Secret("")

SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "workspace_root",
        "WORKSPACE_ROOT",
        parse.abs_path,
        Computed(_default_workspace),
        "The persistent volume: models, output, workflows, uploads, config, cache, logs. Absolute.",
        doc="/workspace if it exists, else ./workspace",
    ),
    Spec(
        "comfyui_root",
        "COMFYUI_ROOT",
        parse.abs_path,
        Computed(_default_comfyui_root),
        "ComfyUI's install folder (holds main.py). Unset or missing: ComfyUI is 'not installed'.",
        doc="/app/comfyui/ComfyUI if it exists, else none",
    ),
    Spec(
        "comfyui_python",
        "COMFYUI_PYTHON",
        parse.abs_path,
        Computed(_default_comfyui_python),
        "The interpreter that runs ComfyUI (its own venv, with torch).",
        doc="the venv beside COMFYUI_ROOT, else this Python",
    ),
    Spec("dashboard_port", "DASHBOARD_PORT", parse.port, 8080, "Public port of the dashboard."),
    Spec(
        "comfyui_port",
        "COMFYUI_PORT",
        parse.port,
        3000,
        "Public port of ComfyUI (through nginx, behind the login when a password is set).",
    ),
    Spec(
        "comfyui_internal_port",
        "COMFYUI_INTERNAL_PORT",
        parse.port,
        8188,
        "Loopback port ComfyUI itself listens on; never public.",
    ),
    Spec(
        "dashboard_internal_port",
        "DASHBOARD_INTERNAL_PORT",
        parse.port,
        8081,
        "Loopback port of the dashboard when nginx is in front of it.",
    ),
    Spec(
        "dashboard_host",
        "DASHBOARD_HOST",
        parse.text,
        "0.0.0.0",
        "Address of the public ports: the dashboard's when nginx is off, nginx's when on "
        "(0.0.0.0 = every address; use 127.0.0.1 on a laptop).",
    ),
    Spec(
        "enable_nginx",
        "ENABLE_NGINX",
        parse.boolean,
        False,
        "Run nginx in front of the dashboard and ComfyUI on the public ports.",
        doc="false (true in the image)",
    ),
    Spec(
        "preset_download",
        "PRESET_DOWNLOAD",
        parse.preset_ids,
        (),
        "Comma-separated video preset ids to install in the background at start.",
    ),
    Spec(
        "image_preset_download",
        "IMAGE_PRESET_DOWNLOAD",
        parse.preset_ids,
        (),
        "Comma-separated image preset ids to install at start.",
    ),
    Spec(
        "audio_preset_download",
        "AUDIO_PRESET_DOWNLOAD",
        parse.preset_ids,
        (),
        "Comma-separated audio preset ids to install at start.",
    ),
    Spec(
        "enable_preset_manager",
        "ENABLE_PRESET_MANAGER",
        parse.boolean,
        True,
        "Show the preset catalog and allow installs from the dashboard.",
    ),
    Spec(
        "access_password",
        "ACCESS_PASSWORD",
        parse.secret,
        _NO_SECRET,
        "Password for every public port, the API and the WebSockets. Empty: no login (warned).",
        secret=True,
    ),
    Spec(
        "api_token",
        "API_TOKEN",
        parse.secret,
        _NO_SECRET,
        "Bearer token for API clients (shown in Settings).",
        doc="derived from ACCESS_PASSWORD",
        secret=True,
    ),
    Spec("time_zone", "TIME_ZONE", parse.time_zone, "Etc/UTC", "IANA time zone for logs and timestamps."),
    Spec(
        "hf_token",
        "HF_TOKEN",
        parse.token,
        _NO_SECRET,
        "Hugging Face token for gated models (sent to huggingface.co only).",
        aliases=("HUGGING_FACE_HUB_TOKEN",),
        secret=True,
    ),
    Spec(
        "civitai_token",
        "CIVITAI_TOKEN",
        parse.token,
        _NO_SECRET,
        "Civitai token (sent to civitai.com only).",
        aliases=("CIVITAI_API_TOKEN",),
        secret=True,
    ),
    Spec(
        "comfyui_extra_args",
        "COMFYUI_EXTRA_ARGS",
        parse.shell_words,
        (),
        "Extra command-line arguments for ComfyUI, shell-quoted (e.g. '--cpu --preview-method auto').",
        show=shlex.join,
    ),
    Spec(
        "comfyui_gpus",
        "COMFYUI_GPUS",
        parse.gpu_choice,
        GpuChoice(),
        "One ComfyUI per GPU: all (every visible GPU) or GPU indexes as nvidia-smi numbers them "
        "(0,1,3). GPU n's ComfyUI listens on COMFYUI_INTERNAL_PORT+n and opens at /gpu/n/ on "
        "COMFYUI_PORT; prompts go to the shortest queue. Empty: one ComfyUI for every GPU.",
        show=str,
    ),
    Spec(
        "comfyui_instance_ram_gb",
        "COMFYUI_INSTANCE_RAM_GB",
        parse.whole_number(1, 4096),
        8,
        "RAM (GiB) one ComfyUI is counted to need: COMFYUI_GPUS=all starts only as many as the "
        "machine's (or container's) memory holds, and says so.",
    ),
    Spec(
        "comfyui_test_gpus",
        "COMFYUI_TEST_GPUS",
        parse.declared_gpus,
        (),
        "Testing only: pretend this machine has N GPUs (N, or NxGiB such as 2x24) instead of asking "
        "NVML, so COMFYUI_GPUS can be tried without GPUs; ComfyUI then runs with --cpu.",
        show=lambda sizes: f"{len(sizes)}x{sizes[0]}" if sizes else "",
    ),
    Spec(
        "comfyui_pass_env",
        "COMFYUI_PASS_ENV",
        parse.env_names,
        (),
        "Comma-separated names of extra environment variables ComfyUI may see (e.g. a custom "
        "node's OPENAI_API_KEY); it gets only paths, locale and GPU settings otherwise.",
    ),
    Spec(
        "model_hosts",
        "MODEL_HOSTS",
        parse.model_hosts,
        DEFAULT_MODEL_HOSTS,
        "Comma-separated hosts a workflow's model URLs may download from (each covers its "
        "subdomains; Settings adds more). Internal addresses are never fetched.",
    ),
    Spec(
        "download_connections",
        "DOWNLOAD_CONNECTIONS",
        parse.whole_number(1, 32),
        8,
        "Connections per large file when the server supports ranges (1-32).",
    ),
    Spec(
        "download_parallel_files",
        "DOWNLOAD_PARALLEL_FILES",
        parse.whole_number(1, 16),
        3,
        "Files downloaded at the same time (1-16).",
    ),
    Spec(
        "cors_origins",
        "CORS_ORIGINS",
        parse.csv,
        (),
        "Comma-separated extra origins allowed by CORS (same-origin by default).",
    ),
    Spec("log_level", "LOG_LEVEL", parse.log_level, "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Spec(
        "public_key",
        "PUBLIC_KEY",
        parse.text,
        "",
        "SSH public key (RunPod injects it); starts sshd with that key only.",
    ),
    Spec(
        "runpod_pod_id",
        "RUNPOD_POD_ID",
        parse.text,
        "",
        "Set by RunPod; used to show the public proxy URLs.",
    ),
)
