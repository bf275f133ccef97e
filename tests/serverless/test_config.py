"""Serverless settings, the volume at /runpod-volume, the CLI's pass-through of the SDK's flags."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comfyui_docker.cli import build_parser
from comfyui_docker.cli.serverless import SDK_FLAGS, sdk_argv
from comfyui_docker.errors import SettingsError
from comfyui_docker.serverless.config import SPECS, ServerlessSettings, volume_env
from comfyui_docker.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_the_workspace_follows_the_network_volume(tmp_path: Path) -> None:
    volume = tmp_path / "runpod-volume"
    assert volume_env({}, volume) == {}  # no volume mounted: the usual default
    volume.mkdir()
    assert volume_env({}, volume)["WORKSPACE_ROOT"] == str(volume)
    assert volume_env({"WORKSPACE_ROOT": "/workspace"}, volume)["WORKSPACE_ROOT"] == str(
        volume
    )  # the image's
    assert volume_env({"WORKSPACE_ROOT": "/data"}, volume)["WORKSPACE_ROOT"] == "/data"  # the user's choice
    settings = Settings.from_env(volume_env({"WORKSPACE_ROOT": "/workspace"}, volume), cwd=tmp_path)
    assert settings.workspace_root == volume


def test_settings_read_and_checked() -> None:
    default = ServerlessSettings.from_env({})
    assert default.job_timeout is None and not default.s3 and not default.refresh_worker
    assert not default.comfy_org_api_key
    full = ServerlessSettings.from_env(
        {
            "COMFYUI_JOB_TIMEOUT": "90",
            "BUCKET_ENDPOINT_URL": "https://bucket.s3.eu-west-1.amazonaws.com/",
            "BUCKET_ACCESS_KEY_ID": "AKID",
            "BUCKET_SECRET_ACCESS_KEY": "shh",
            "COMFY_ORG_API_KEY": "comfy-key",
            "REFRESH_WORKER": "true",
        }
    )
    assert full.job_timeout == 90 and full.s3 and full.refresh_worker
    assert full.bucket_endpoint_url == "https://bucket.s3.eu-west-1.amazonaws.com"
    assert full.comfy_org_api_key.get() == "comfy-key" and "comfy-key" not in repr(full)
    assert ServerlessSettings.from_env({"COMFYUI_JOB_TIMEOUT": "0"}).job_timeout is None
    for bad in (
        {"COMFYUI_JOB_TIMEOUT": "-1"},
        {"BUCKET_ENDPOINT_URL": "https://b", "BUCKET_ACCESS_KEY_ID": "a"},
    ):
        with pytest.raises(SettingsError):
            ServerlessSettings.from_env(bad)


def test_every_serverless_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for spec in SPECS:
        assert f"`{spec.env}`" in readme, spec.env


def test_the_sdks_flags_pass_through_unchanged() -> None:
    args = build_parser().parse_args(
        [
            "serverless",
            "--rp_serve_api",
            "--rp_api_port",
            "8010",
            "--rp_api_host",
            "0.0.0.0",
            "--test_input",
            "{}",
        ]
    )
    assert sdk_argv(args) == [
        "--rp_serve_api",
        "--rp_api_port",
        "8010",
        "--rp_api_host",
        "0.0.0.0",
        "--test_input",
        "{}",
    ]
    assert sdk_argv(build_parser().parse_args(["serverless"])) == []
    # the SDK's own parser reads them back (it parses sys.argv itself)
    from runpod.serverless import parser as sdk_parser

    flags = ["--rp_serve_api", "--rp_api_port", "1", "--rp_api_host", "h", "--rp_api_concurrency", "2"]
    flags += ["--rp_log_level", "WARN", "--rp_debugger", "--test_input", '{"input": {}}']
    every = build_parser().parse_args(["serverless", *flags])
    parsed = vars(sdk_parser.parse_args(sdk_argv(every)))
    assert {k: parsed[k] for k in SDK_FLAGS} == {
        "rp_serve_api": True,
        "rp_api_port": 1,
        "rp_api_host": "h",
        "rp_api_concurrency": 2,
        "rp_log_level": "WARN",
        "rp_debugger": True,
        "test_input": '{"input": {}}',
    }
    assert isinstance(every, argparse.Namespace)


def test_process_start_is_read_to_the_tick() -> None:
    """The cold-start log counts from the process's own start (imports included), not to the second."""
    code = "import time; time.sleep(0.3); from comfyui_docker.serverless.worker import process_started; "
    code += "print(time.time() - process_started())"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    elapsed = time.monotonic() - started
    age = float(done.stdout)
    assert 0.3 <= age <= elapsed + 0.02
