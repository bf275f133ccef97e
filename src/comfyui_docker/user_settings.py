"""Settings a user changes from the dashboard, kept on the volume.

Stored in `workspace/config/user_settings.yaml`, written atomically with mode 0600 (it holds
tokens). Values set here take precedence over the environment for what they cover:

    hf_token, civitai_token      tokens for gated downloads (never shown back in full)
    startup_presets              preset ids installed in the background at each start
    download_parallel_files      files downloaded at the same time (1-16)
    model_hosts                  more hosts a workflow's model URLs may use (added to MODEL_HOSTS)

`apply(settings)` returns the effective `Settings` (the downloads use that), so a token saved
in the dashboard works without a restart of the pod.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .downloads.hosts import parse_hosts
from .errors import InvalidInput
from .model_paths import atomic_write_text
from .settings import PRESET_ID_RE, Secret, Settings

log = logging.getLogger(__name__)
FILE_MODE = 0o600
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.:=+/]{8,512}$")


@dataclass
class UserSettings:
    hf_token: str = ""
    civitai_token: str = ""
    startup_presets: list[str] = field(default_factory=list)
    download_parallel_files: int | None = None
    model_hosts: list[str] = field(default_factory=list)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.hf_token:
            out["hf_token"] = self.hf_token
        if self.civitai_token:
            out["civitai_token"] = self.civitai_token
        if self.startup_presets:
            out["startup_presets"] = list(self.startup_presets)
        if self.download_parallel_files is not None:
            out["download_parallel_files"] = self.download_parallel_files
        if self.model_hosts:
            out["model_hosts"] = list(self.model_hosts)
        return out


def mask(token: str) -> str:
    """`hf_…wxyz`: enough to recognise a token, never enough to use it."""
    if not token:
        return ""
    if len(token) <= 8:
        return "…" + "•" * 4
    prefix = token[:3] if token[:3].isalpha() or token[2:3] == "_" else ""
    return f"{prefix}…{token[-4:]}"


def load(path: Path) -> UserSettings:
    """Read the file; a missing file is the defaults; a broken one raises InvalidInput."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UserSettings()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{path} is not valid YAML: {exc}", hint="fix or delete the file, then save Settings again"
        ) from None
    if raw is None:
        return UserSettings()
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path} must hold a mapping", hint="delete the file and save Settings again")
    values, errors = validate(
        {
            "hf_token": raw.get("hf_token", ""),
            "civitai_token": raw.get("civitai_token", ""),
            "startup_presets": raw.get("startup_presets", []),
            "download_parallel_files": raw.get("download_parallel_files"),
            "model_hosts": raw.get("model_hosts", []),
        }
    )
    if errors:
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise InvalidInput(f"{path}: {detail}", hint="fix the file or save Settings again")
    return values


def validate(raw: dict[str, Any]) -> tuple[UserSettings, dict[str, str]]:
    """Parse submitted values; returns (settings, {field: problem}) with every problem at once."""
    errors: dict[str, str] = {}
    out = UserSettings()
    for key in ("hf_token", "civitai_token"):
        value = raw.get(key) or ""
        if not isinstance(value, str):
            errors[key] = "must be text"
            continue
        value = value.strip()
        if value and not TOKEN_RE.match(value):
            errors[key] = "8-512 characters, letters, digits and - _ . : = + / only (no spaces)"
            continue
        setattr(out, key, value)
    presets = raw.get("startup_presets") or []
    if isinstance(presets, str):
        presets = [p for p in re.split(r"[,\s;]+", presets) if p]
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        errors["startup_presets"] = "must be a list of preset ids"
    else:
        ids: list[str] = []
        bad: list[str] = []
        for item in presets:
            pid = item.strip().upper()
            if not PRESET_ID_RE.match(pid):
                bad.append(item)
            elif pid not in ids:
                ids.append(pid)
        if bad:
            errors["startup_presets"] = "not preset ids: " + ", ".join(bad) + " (ids look like SDXL_BASE)"
        out.startup_presets = ids
    par = raw.get("download_parallel_files")
    if par not in (None, ""):
        try:
            num = int(str(par).strip())
        except ValueError:
            errors["download_parallel_files"] = f"{par!r} is not a whole number"
        else:
            if 1 <= num <= 16:
                out.download_parallel_files = num
            else:
                errors["download_parallel_files"] = "use a number from 1 to 16"
    hosts = raw.get("model_hosts") or []
    if not isinstance(hosts, str | list) or (
        isinstance(hosts, list) and not all(isinstance(h, str) for h in hosts)
    ):
        errors["model_hosts"] = "must be a list of host names"
    else:
        found, bad = parse_hosts(hosts)
        if bad:
            errors["model_hosts"] = (
                "not host names: " + ", ".join(bad[:5]) + " (e.g. huggingface.co, no URLs)"
            )
        out.model_hosts = list(found)
    return out, errors


def save(path: Path, values: UserSettings) -> None:
    """Write atomically with mode 0600 (the temp file is private from its first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by the dashboard's Settings page. Holds tokens: keep it private (0600).\n"
    text += yaml.safe_dump(values.to_yaml(), sort_keys=True, allow_unicode=True)
    atomic_write_text(path, text, FILE_MODE)  # the temp file is created 0600
    os.chmod(path, FILE_MODE)  # also when the content was unchanged but the mode was not


def merge_form(current: UserSettings, form: dict[str, Any]) -> tuple[UserSettings, dict[str, str]]:
    """A Settings form: an empty token field keeps the stored token; `clear_<token>` removes it."""
    raw: dict[str, Any] = {
        "startup_presets": form.get("startup_presets", ""),
        "download_parallel_files": form.get("download_parallel_files"),
        "model_hosts": form.get("model_hosts", ""),
    }
    for key in ("hf_token", "civitai_token"):
        typed = str(form.get(key) or "").strip()
        if form.get(f"clear_{key}"):
            raw[key] = ""
        else:
            raw[key] = typed or getattr(current, key)
    return validate(raw)


def effective(settings: Settings, path: Path) -> Settings:
    """`settings` with the saved user settings applied; a broken file is logged and ignored."""
    try:
        values = load(path)
    except InvalidInput as exc:
        log.warning("ignoring %s: %s", path.name, exc)
        return settings
    return apply(settings, values)


def apply(settings: Settings, values: UserSettings) -> Settings:
    """The effective settings: what the user saved here wins over the environment."""
    changes: dict[str, Any] = {}
    if values.hf_token:
        changes["hf_token"] = Secret(values.hf_token)
    if values.civitai_token:
        changes["civitai_token"] = Secret(values.civitai_token)
    if values.download_parallel_files is not None:
        changes["download_parallel_files"] = values.download_parallel_files
    if values.model_hosts:
        hosts = list(settings.model_hosts)
        changes["model_hosts"] = tuple(hosts + [h for h in values.model_hosts if h not in hosts])
    if values.startup_presets:
        merged = list(settings.preset_download)
        merged += [p for p in values.startup_presets if p not in merged]
        changes["preset_download"] = tuple(merged)
    return dataclasses.replace(settings, **changes) if changes else settings
