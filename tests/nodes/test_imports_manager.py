"""Import results read from ComfyUI's log (its own recorded output), and ComfyUI-Manager's config."""

from __future__ import annotations

import configparser
from pathlib import Path

from comfy_samples import SAMPLES
from comfyui_docker.nodes.imports import last_start, parse
from comfyui_docker.nodes.manager import config_path, ensure_pip
from comfyui_docker.supervisor.logcapture import LogCapture


def test_a_real_comfyui_log_through_our_log_capture(tmp_path: Path) -> None:
    log = tmp_path / "comfyui.log"
    capture = LogCapture("comfyui", log)  # time stamps and ANSI stripping, as the runtime writes it
    for line in (SAMPLES / "custom_nodes_import.log").read_text().splitlines():
        capture.add(line)
    capture.close()
    report = last_start(log)
    assert report.found
    good = report.lookup(Path("/workspace/custom_nodes/goodnode"))
    bad = report.lookup(Path("/workspace/custom_nodes/badnode"))
    assert good is not None and good.ok and good.error == ""
    assert bad is not None and not bad.ok and bad.error == "No module named 'not_a_module_xyz'"
    assert bad.traceback[0] == "Traceback (most recent call last):"
    assert "ModuleNotFoundError: No module named 'not_a_module_xyz'" in bad.traceback
    assert report.results["COMFYUI_ROOT/custom_nodes/websocket_image_save.py"].ok


def test_the_last_start_wins_and_no_start_is_no_report(tmp_path: Path) -> None:
    first = [
        "2026-01-01 00:00:00.000 [WARNING] Cannot import /n/a module for custom nodes: old error",
        "2026-01-01 00:00:00.000 Import times for custom nodes:",
        "2026-01-01 00:00:00.000 [INFO]    0.0 seconds (IMPORT FAILED): /n/a",
    ]
    second = [
        "2026-01-01 00:01:00.000 [INFO] Import times for custom nodes:",
        "2026-01-01 00:01:00.000 [INFO]    0.2 seconds: /n/a",
        "2026-01-01 00:01:00.000 [INFO] Starting server",
    ]
    report = parse([*first, *second])
    assert report.results["/n/a"].ok and report.results["/n/a"].seconds == 0.2
    assert not parse(first[:1]).found
    assert not last_start(tmp_path / "missing.log").found
    # an import failure without its message line still says where to look
    only = parse(["Import times for custom nodes:", "   0.0 seconds (IMPORT FAILED): /n/b"])
    assert only.results["/n/b"].error == "import failed (see logs/comfyui.log)"


def test_the_manager_uses_pip_and_keeps_the_users_settings(tmp_path: Path) -> None:
    user = tmp_path / "user"
    assert ensure_pip(user) is True
    path = config_path(user)
    assert path == user / "__manager" / "config.ini"
    config = configparser.ConfigParser()
    config.read(path)
    assert config["default"]["use_uv"] == "False"
    path.write_text("[default]\nuse_uv = True\nsecurity_level = weak\nchannel_url = https://x/%(y)s\n")
    assert ensure_pip(user) is True
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    assert dict(config["default"]) == {
        "use_uv": "False",
        "security_level": "weak",
        "channel_url": "https://x/%(y)s",
    }
    assert ensure_pip(user) is False  # already so: not rewritten
    path.write_text("this is [not an ini")
    assert ensure_pip(user) is True and "use_uv = False" in path.read_text()
