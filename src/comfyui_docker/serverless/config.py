"""The settings only a serverless worker reads, declared like `settings.SPECS` (README table from
`make docs`), and where its volume is.

    RUNPOD_VOLUME / volume_env(environ)   the network volume is mounted at /runpod-volume on
                                          RunPod Serverless: the workspace follows it
    ServerlessSettings.from_env()         COMFYUI_JOB_TIMEOUT, the S3 bucket, COMFY_ORG_API_KEY,
                                          REFRESH_WORKER

The bucket variables are the ones the RunPod SDK's upload helper reads itself (worker-comfyui
documents the same names); they are checked here so that a half-configured bucket stops the
start instead of every job (the helper would silently write files to the local disk instead).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import setting_parsers as parse
from ..errors import SettingsError
from ..settings import Secret, Spec

#: Where RunPod mounts an endpoint's network volume in a serverless worker (pods: /workspace).
RUNPOD_VOLUME = Path("/runpod-volume")
#: The image's WORKSPACE_ROOT: the pods' mount path, which a serverless worker does not use.
IMAGE_WORKSPACE = "/workspace"


def volume_env(environ: Mapping[str, str], volume: Path = RUNPOD_VOLUME) -> dict[str, str]:
    """The environment for `Settings` in a serverless worker: when a network volume is mounted at
    `volume`, the workspace is there (same layout, yaml, presets and custom nodes as on a pod),
    unless WORKSPACE_ROOT names another folder than the image's /workspace."""
    env = dict(environ)
    if env.get("WORKSPACE_ROOT", "") in ("", IMAGE_WORKSPACE) and volume.is_dir():
        env["WORKSPACE_ROOT"] = str(volume)
    return env


def _url(var: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise SettingsError(
            var, f"{raw!r} is not an http(s) URL", hint="e.g. https://<bucket>.s3.<region>.amazonaws.com"
        )
    return value


def _seconds(var: str, raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 86400:
        raise SettingsError(var, f"{raw!r} is not a number of seconds", hint="e.g. 600; 0 means no limit")
    return value or None


_NO_SECRET = Secret("")

SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "job_timeout",
        "COMFYUI_JOB_TIMEOUT",
        _seconds,
        None,
        "Seconds a job's workflow may run; then it is interrupted and the job fails "
        "(0 or unset: no limit of ours, the endpoint's execution timeout still applies).",
        doc="0",
    ),
    Spec(
        "bucket_endpoint_url",
        "BUCKET_ENDPOINT_URL",
        _url,
        "",
        "S3 endpoint of a bucket; when set, outputs are uploaded there and returned "
        "as `s3_url` instead of base64 (needs the two keys below).",
    ),
    Spec(
        "bucket_access_key_id",
        "BUCKET_ACCESS_KEY_ID",
        parse.secret,
        _NO_SECRET,
        "Access key id for BUCKET_ENDPOINT_URL.",
        secret=True,
    ),
    Spec(
        "bucket_secret_access_key",
        "BUCKET_SECRET_ACCESS_KEY",
        parse.secret,
        _NO_SECRET,
        "Secret access key for BUCKET_ENDPOINT_URL.",
        secret=True,
    ),
    Spec(
        "comfy_org_api_key",
        "COMFY_ORG_API_KEY",
        parse.secret,
        _NO_SECRET,
        "Comfy.org API key for ComfyUI's API nodes, sent with every job "
        "(a job's `comfy_org_api_key` overrides it).",
        secret=True,
    ),
    Spec(
        "refresh_worker",
        "REFRESH_WORKER",
        parse.boolean,
        False,
        "Stop the worker after each job, so every job starts on a fresh one.",
    ),
)


@dataclass(frozen=True)
class ServerlessSettings:
    job_timeout: float | None
    bucket_endpoint_url: str
    bucket_access_key_id: Secret
    bucket_secret_access_key: Secret
    comfy_org_api_key: Secret
    refresh_worker: bool

    @property
    def s3(self) -> bool:
        """Whether outputs go to the bucket (through the SDK's upload helper)."""
        return bool(self.bucket_endpoint_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerlessSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        cwd = Path.cwd()
        for spec in SPECS:
            values[spec.attr] = spec.read(env, values, cwd)
        settings = cls(**values)
        if settings.s3:
            for spec in SPECS[2:4]:
                if not values[spec.attr]:
                    raise SettingsError(
                        spec.env,
                        "BUCKET_ENDPOINT_URL is set, so the bucket's keys are needed too",
                        hint="set BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY "
                        "(or unset BUCKET_ENDPOINT_URL)",
                    )
        return settings
