"""MODE=serverless through the image's entry point, outside a container: docker/startup.sh with the
Dockerfile's environment (laid out as test_image_startup does), the container's arguments passed
to the RunPod SDK. ComfyUI runs supervised; no dashboard, nginx or sshd."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from image_helpers import DOCKER, free_port
from test_image_startup import lay_out

from fakes.comfyui_root.fake_comfy import png

pytestmark = pytest.mark.slow

GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 5}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "image/serverless"}},
}


def test_mode_serverless_serves_runsync_without_dashboard_nginx_or_sshd(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "WORKSPACE_", "DASHBOARD_"))},
        **lay_out(tmp_path),
        "MODE": "serverless",
        "DASHBOARD_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIm8c2D2Ixb5vJd1yq7y6k5X2P3M5Ck5lVh7F0qU5n3Z test",
    }
    assert env["ENABLE_NGINX"] == "true"  # the image's default, which serverless ignores
    api = free_port()
    log = tmp_path / "serverless.log"
    argv = [
        str(DOCKER / "startup.sh"),
        "--rp_serve_api",
        "--rp_api_host",
        "127.0.0.1",
        "--rp_api_port",
        str(api),
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=tmp_path / "workspace",
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/openapi.json", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        req = urllib.request.Request(
            f"http://127.0.0.1:{api}/runsync",
            data=json.dumps({"input": {"workflow": GRAPH}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
        assert answer["status"] == "COMPLETED", answer
        (image,) = answer["output"]["images"]
        assert png.size_of(base64.b64decode(image["data"])) == (48, 32)
        commands = [" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(commands) == 1 and "main.py" in commands[0], commands  # ComfyUI only
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{env['DASHBOARD_PORT']}/health", timeout=1)
        assert (Path(env["WORKSPACE_ROOT"]) / "logs" / "serverless.log").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
