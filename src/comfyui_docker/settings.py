"""Every setting of the runtime, typed, read from the environment in one place.

Settings are data: `SPECS` lists each variable with its default and help text. The README's
settings table is checked against it by a test, so a setting cannot go undocumented.
Nothing here runs at import time; `Settings.from_env()` is the only reader of the environment.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .downloads.hosts import DEFAULT_MODEL_HOSTS, parse_hosts
from .errors import SettingsError

IMAGE_WORKSPACE = Path("/workspace")
IMAGE_COMFYUI_ROOT = Path("/app/comfyui/ComfyUI")
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


@dataclass(frozen=True)
class Spec:
    """One environment variable: name, aliases, default shown in docs, help."""

    attr: str
    env: str
    default: str
    help: str
    aliases: tuple[str, ...] = ()
    secret: bool = False


SPECS: tuple[Spec, ...] = (
    Spec(
        "workspace_root",
        "WORKSPACE_ROOT",
        "/workspace if it exists, else ./workspace",
        "The persistent volume: models, output, workflows, uploads, config, cache, logs. Absolute.",
    ),
    Spec(
        "comfyui_root",
        "COMFYUI_ROOT",
        "/app/comfyui/ComfyUI if it exists, else none",
        "ComfyUI's install folder (holds main.py). Unset or missing: ComfyUI is 'not installed'.",
    ),
    Spec(
        "comfyui_python",
        "COMFYUI_PYTHON",
        "the venv beside COMFYUI_ROOT, else this Python",
        "The interpreter that runs ComfyUI (its own venv, with torch).",
    ),
    Spec("dashboard_port", "DASHBOARD_PORT", "8080", "Public port of the dashboard."),
    Spec(
        "comfyui_port",
        "COMFYUI_PORT",
        "3000",
        "Public port of ComfyUI (through nginx, behind the login when a password is set).",
    ),
    Spec(
        "comfyui_internal_port",
        "COMFYUI_INTERNAL_PORT",
        "8188",
        "Loopback port ComfyUI itself listens on; never public.",
    ),
    Spec(
        "dashboard_internal_port",
        "DASHBOARD_INTERNAL_PORT",
        "8081",
        "Loopback port of the dashboard when nginx is in front of it.",
    ),
    Spec(
        "dashboard_host",
        "DASHBOARD_HOST",
        "0.0.0.0",
        "Address of the public ports: the dashboard's when nginx is off, nginx's when on "
        "(0.0.0.0 = every address; use 127.0.0.1 on a laptop).",
    ),
    Spec(
        "enable_nginx",
        "ENABLE_NGINX",
        "false (true in the image)",
        "Run nginx in front of the dashboard and ComfyUI on the public ports.",
    ),
    Spec(
        "preset_download",
        "PRESET_DOWNLOAD",
        "",
        "Comma-separated video preset ids to install in the background at start.",
    ),
    Spec(
        "image_preset_download",
        "IMAGE_PRESET_DOWNLOAD",
        "",
        "Comma-separated image preset ids to install at start.",
    ),
    Spec(
        "audio_preset_download",
        "AUDIO_PRESET_DOWNLOAD",
        "",
        "Comma-separated audio preset ids to install at start.",
    ),
    Spec(
        "enable_preset_manager",
        "ENABLE_PRESET_MANAGER",
        "true",
        "Show the preset catalog and allow installs from the dashboard.",
    ),
    Spec(
        "access_password",
        "ACCESS_PASSWORD",
        "",
        "Password for every public port, the API and the WebSockets. Empty: no login (warned).",
        secret=True,
    ),
    Spec(
        "api_token",
        "API_TOKEN",
        "derived from ACCESS_PASSWORD",
        "Bearer token for API clients (shown in Settings).",
        secret=True,
    ),
    Spec("time_zone", "TIME_ZONE", "Etc/UTC", "IANA time zone for logs and timestamps."),
    Spec(
        "hf_token",
        "HF_TOKEN",
        "",
        "Hugging Face token for gated models (sent to huggingface.co only).",
        aliases=("HUGGING_FACE_HUB_TOKEN",),
        secret=True,
    ),
    Spec(
        "civitai_token",
        "CIVITAI_TOKEN",
        "",
        "Civitai token (sent to civitai.com only).",
        aliases=("CIVITAI_API_TOKEN",),
        secret=True,
    ),
    Spec(
        "comfyui_extra_args",
        "COMFYUI_EXTRA_ARGS",
        "",
        "Extra command-line arguments for ComfyUI, shell-quoted (e.g. '--cpu --preview-method auto').",
    ),
    Spec(
        "comfyui_pass_env",
        "COMFYUI_PASS_ENV",
        "",
        "Comma-separated names of extra environment variables ComfyUI may see (e.g. a custom "
        "node's OPENAI_API_KEY); it gets only paths, locale and GPU settings otherwise.",
    ),
    Spec(
        "model_hosts",
        "MODEL_HOSTS",
        ",".join(DEFAULT_MODEL_HOSTS),
        "Comma-separated hosts a workflow's model URLs may download from (each covers its "
        "subdomains; Settings adds more). Internal addresses are never fetched.",
    ),
    Spec(
        "download_connections",
        "DOWNLOAD_CONNECTIONS",
        "8",
        "Connections per large file when the server supports ranges (1-32).",
    ),
    Spec(
        "download_parallel_files",
        "DOWNLOAD_PARALLEL_FILES",
        "3",
        "Files downloaded at the same time (1-16).",
    ),
    Spec(
        "cors_origins",
        "CORS_ORIGINS",
        "",
        "Comma-separated extra origins allowed by CORS (same-origin by default).",
    ),
    Spec("log_level", "LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Spec(
        "public_key",
        "PUBLIC_KEY",
        "",
        "SSH public key (RunPod injects it); starts sshd with that key only.",
    ),
    Spec("runpod_pod_id", "RUNPOD_POD_ID", "", "Set by RunPod; used to show the public proxy URLs."),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(var: str, raw: str) -> bool:
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


def _port(var: str, raw: str) -> int:
    return _int(var, raw, 1, 65535)


def _abs_path(var: str, raw: str) -> Path:
    path = Path(raw.strip())
    if not path.is_absolute():
        raise SettingsError(
            var, f"{raw!r} is a relative path", hint="give an absolute path such as /workspace"
        )
    return path


def _ids(var: str, raw: str) -> tuple[str, ...]:
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


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NEVER_PASSED = frozenset({"ACCESS_PASSWORD", "API_TOKEN"})


def _hosts(var: str, raw: str) -> tuple[str, ...]:
    hosts, bad = parse_hosts(raw)
    if bad:
        raise SettingsError(
            var, f"{bad[0]!r} is not a host name", hint="list host names such as huggingface.co, no URLs"
        )
    return hosts


def _env_names(var: str, raw: str) -> tuple[str, ...]:
    names = _csv(raw)
    for name in names:
        if not ENV_NAME_RE.match(name):
            raise SettingsError(var, f"{name!r} is not a variable name", hint="separate names with commas")
        if name in NEVER_PASSED:
            raise SettingsError(
                var, f"{name} is the dashboard's own secret", hint="ComfyUI and its custom nodes never get it"
            )
    return names


def default_comfyui_python(comfyui_root: Path | None) -> Path:
    """The venv the image puts beside COMFYUI_ROOT, else the current interpreter."""
    if comfyui_root is not None:
        for cand in (comfyui_root.parent / "venv", comfyui_root / "venv", comfyui_root / ".venv"):
            py = cand / "bin" / "python"
            if py.exists():
                return py
    return Path(sys.executable)


@dataclass(frozen=True)
class Settings:
    workspace_root: Path
    comfyui_root: Path | None = None
    comfyui_python: Path = field(default_factory=lambda: Path(sys.executable))
    dashboard_port: int = 8080
    comfyui_port: int = 3000
    comfyui_internal_port: int = 8188
    dashboard_internal_port: int = 8081
    dashboard_host: str = "0.0.0.0"
    enable_nginx: bool = False
    preset_download: tuple[str, ...] = ()
    image_preset_download: tuple[str, ...] = ()
    audio_preset_download: tuple[str, ...] = ()
    enable_preset_manager: bool = True
    access_password: Secret = field(default_factory=lambda: Secret(""))
    api_token: Secret = field(default_factory=lambda: Secret(""))
    time_zone: str = "Etc/UTC"
    hf_token: Secret = field(default_factory=lambda: Secret(""))
    civitai_token: Secret = field(default_factory=lambda: Secret(""))
    comfyui_extra_args: tuple[str, ...] = ()
    comfyui_pass_env: tuple[str, ...] = ()
    model_hosts: tuple[str, ...] = DEFAULT_MODEL_HOSTS
    download_connections: int = 8
    download_parallel_files: int = 3
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    public_key: str = ""
    runpod_pod_id: str = ""

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
            if isinstance(value, Secret):
                out[spec.env] = "set" if value else ""
            elif isinstance(value, tuple):
                out[spec.env] = ",".join(value) if spec.attr != "comfyui_extra_args" else shlex.join(value)
            else:
                out[spec.env] = str(value) if value is not None else ""
        return out

    # ---- construction ---------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        """Read every setting from `env` (default: os.environ); raise SettingsError on a bad value."""
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd

        def get(spec_env: str) -> str | None:
            spec = _SPEC_BY_ENV[spec_env]
            for name in (spec.env, *spec.aliases):
                value = env.get(name)
                if value is not None and value != "":
                    return value
            return None

        def parsed(spec_env: str, conv: Callable[[str, str], Any], default: Any) -> Any:
            raw = get(spec_env)
            return default if raw is None else conv(spec_env, raw)

        raw_ws = get("WORKSPACE_ROOT")
        if raw_ws is not None:
            workspace = _abs_path("WORKSPACE_ROOT", raw_ws)
        elif IMAGE_WORKSPACE.is_dir():
            workspace = IMAGE_WORKSPACE
        else:
            workspace = (cwd / "workspace").resolve()

        raw_root = get("COMFYUI_ROOT")
        if raw_root is not None:
            comfyui_root: Path | None = _abs_path("COMFYUI_ROOT", raw_root)
        elif (IMAGE_COMFYUI_ROOT / "main.py").is_file():
            comfyui_root = IMAGE_COMFYUI_ROOT
        else:
            comfyui_root = None

        raw_py = get("COMFYUI_PYTHON")
        comfyui_python = (
            _abs_path("COMFYUI_PYTHON", raw_py)
            if raw_py is not None
            else default_comfyui_python(comfyui_root)
        )

        tz = (get("TIME_ZONE") or "Etc/UTC").strip()
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                "TIME_ZONE",
                f"{tz!r} is not a known time zone",
                hint="use an IANA name such as Etc/UTC or Europe/Berlin",
            ) from None

        raw_args = get("COMFYUI_EXTRA_ARGS") or ""
        try:
            extra_args = tuple(shlex.split(raw_args))
        except ValueError as exc:
            raise SettingsError(
                "COMFYUI_EXTRA_ARGS", f"cannot be split: {exc}", hint="check the quotes"
            ) from None

        level = (get("LOG_LEVEL") or "INFO").strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(
                "LOG_LEVEL",
                f"{level!r} is not a log level",
                hint="use DEBUG, INFO, WARNING or ERROR",
            )

        settings = cls(
            workspace_root=workspace,
            comfyui_root=comfyui_root,
            comfyui_python=comfyui_python,
            dashboard_port=parsed("DASHBOARD_PORT", _port, 8080),
            comfyui_port=parsed("COMFYUI_PORT", _port, 3000),
            comfyui_internal_port=parsed("COMFYUI_INTERNAL_PORT", _port, 8188),
            dashboard_internal_port=parsed("DASHBOARD_INTERNAL_PORT", _port, 8081),
            dashboard_host=(get("DASHBOARD_HOST") or "0.0.0.0").strip(),
            enable_nginx=parsed("ENABLE_NGINX", _bool, False),
            preset_download=parsed("PRESET_DOWNLOAD", _ids, ()),
            image_preset_download=parsed("IMAGE_PRESET_DOWNLOAD", _ids, ()),
            audio_preset_download=parsed("AUDIO_PRESET_DOWNLOAD", _ids, ()),
            enable_preset_manager=parsed("ENABLE_PRESET_MANAGER", _bool, True),
            access_password=Secret(get("ACCESS_PASSWORD") or ""),
            api_token=Secret(get("API_TOKEN") or ""),
            time_zone=tz,
            hf_token=Secret((get("HF_TOKEN") or "").strip()),
            civitai_token=Secret((get("CIVITAI_TOKEN") or "").strip()),
            comfyui_extra_args=extra_args,
            comfyui_pass_env=parsed("COMFYUI_PASS_ENV", _env_names, ()),
            model_hosts=parsed("MODEL_HOSTS", _hosts, DEFAULT_MODEL_HOSTS),
            download_connections=parsed("DOWNLOAD_CONNECTIONS", lambda v, r: _int(v, r, 1, 32), 8),
            download_parallel_files=parsed("DOWNLOAD_PARALLEL_FILES", lambda v, r: _int(v, r, 1, 16), 3),
            cors_origins=_csv(get("CORS_ORIGINS") or ""),
            log_level=level,
            public_key=(get("PUBLIC_KEY") or "").strip(),
            runpod_pod_id=(get("RUNPOD_POD_ID") or "").strip(),
        )
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
        return settings


_SPEC_BY_ENV = {s.env: s for s in SPECS}
assert {s.attr for s in SPECS} == {f.name for f in fields(Settings)}, "SPECS and Settings disagree"
