"""Process facts (COMFYUI.md §5 crashes, §7 signals) and the fake's fault modes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.comfyui_root.launch import (
    FAKE_ROOT,
    Layout,
    command,
    free_port,
    python_for,
    ready,
    real_comfyui_root,
    run_comfyui,
)

BAD_YAMLS = {
    "empty": ("# only a comment\n", "'NoneType' object is not iterable"),
    "scalar": ("just a string\n", "string indices must be integers"),
    "list_value": ("a:\n  checkpoints:\n    - x\n    - y\n", "'list' object has no attribute 'split'"),
    "int_value": ("a:\n  checkpoints: 5\n", "'int' object has no attribute 'split'"),
    "null_value": ("a:\n  checkpoints:\n", "'NoneType' object has no attribute 'split'"),
    "custom_nodes_missing": ("a:\n  custom_nodes: /nonexistent/custom_nodes\n", "FileNotFoundError"),
}


def roots() -> list[object]:
    return [
        pytest.param(FAKE_ROOT, id="fake"),
        pytest.param("real", id="real", marks=pytest.mark.real_comfyui),
    ]


def resolve(root: object) -> Path:
    if root == "real":
        real, why = real_comfyui_root()
        if real is None:
            pytest.skip(f"real ComfyUI: {why}")
        return real
    assert isinstance(root, Path)
    return root


@pytest.mark.parametrize("root", roots())
@pytest.mark.parametrize("case", sorted(BAD_YAMLS))
def test_bad_yaml_crashes_before_listening(tmp_path: Path, root: object, case: str) -> None:
    where = resolve(root)
    text, message = BAD_YAMLS[case]
    layout = Layout(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    port = free_port()
    python = sys.executable if where == FAKE_ROOT else python_for(where)
    argv = command(python, port, layout, ["--cpu"], [bad])
    proc = subprocess.run(argv, cwd=where, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and message in proc.stderr
    assert not ready(f"http://127.0.0.1:{port}", layout.output)


def test_missing_yaml_path_crashes(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    argv = command(sys.executable, free_port(), layout, [], [tmp_path / "nope.yaml"])
    proc = subprocess.run(argv, cwd=FAKE_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "FileNotFoundError" in proc.stderr


def test_unknown_flag_is_an_argparse_error(tmp_path: Path) -> None:
    argv = command(sys.executable, free_port(), Layout(tmp_path), ["--no-such-flag"])
    proc = subprocess.run(argv, cwd=FAKE_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unrecognized arguments: --no-such-flag" in proc.stderr


def test_startup_log_lines(tmp_path: Path) -> None:
    with run_comfyui(tmp_path) as comfy:
        pass
    log = comfy.log()
    assert f"Adding extra search path checkpoints {comfy.layout.vol}/models/checkpoints" in log
    assert f"Setting output directory to: {comfy.layout.output}" in log
    assert "Starting server" in log
    assert f"To see the GUI go to: http://127.0.0.1:{comfy.port}" in log
    assert "Stopped server" in log  # run_comfyui stops with SIGINT


def test_sigint_is_a_clean_stop_and_wipes_temp(tmp_path: Path) -> None:
    with run_comfyui(tmp_path) as comfy:
        (comfy.layout.temp / "temp").mkdir(exist_ok=True)
        (comfy.layout.temp / "temp" / "preview.png").write_bytes(b"x")
        comfy.proc.send_signal(signal.SIGINT)
        assert comfy.proc.wait(10) == 0
        assert "Stopped server" in comfy.log()
        assert not (comfy.layout.temp / "temp").exists()


def test_sigterm_kills_without_the_message(tmp_path: Path) -> None:
    with run_comfyui(tmp_path) as comfy:
        comfy.proc.send_signal(signal.SIGTERM)
        assert comfy.proc.wait(10) == -signal.SIGTERM
        assert "Stopped server" not in comfy.log()


def test_inherited_ignored_sigint_survives_like_the_real_gotcha(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    port = free_port()
    argv = command(sys.executable, port, layout)
    # what `cmd &` in a non-interactive shell does: SIGINT ignored before exec
    proc = subprocess.Popen(
        argv,
        cwd=FAKE_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 30
        while not ready(f"http://127.0.0.1:{port}", layout.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(1.0)
    finally:
        proc.kill()
        proc.wait(5)


def test_mode_start_delay(tmp_path: Path) -> None:
    started = time.monotonic()
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_START_DELAY": "1.0"}):
        assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("mode", "text"), [("crash", "RuntimeError"), ("exit_immediately", "exiting at once")]
)
def test_modes_that_never_listen(tmp_path: Path, mode: str, text: str) -> None:
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": mode}, wait=False) as comfy:
        assert comfy.proc.wait(30) == 1
        assert text in comfy.log()


def test_mode_crash_after(tmp_path: Path) -> None:
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": "crash_after:0.5"}) as comfy:
        assert comfy.proc.wait(10) == 1


def test_mode_hang_never_listens(tmp_path: Path) -> None:
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": "hang"}, wait=False) as comfy:
        time.sleep(1.5)
        assert comfy.proc.poll() is None
        assert not ready(comfy.url, comfy.layout.output)


def test_mode_bad_argv_is_not_ready(tmp_path: Path) -> None:
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": "bad_argv"}, wait=False) as comfy:
        deadline = time.monotonic() + 20
        while "Starting server" not in comfy.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Starting server" in comfy.log()
        assert not ready(comfy.url, comfy.layout.output)


def test_mode_ignore_sigint(tmp_path: Path) -> None:
    with run_comfyui(tmp_path, env={"FAKE_COMFYUI_MODE": "ignore_sigint"}) as comfy:
        comfy.proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            comfy.proc.wait(0.5)
        comfy.proc.send_signal(signal.SIGTERM)
        assert comfy.proc.wait(5) == -signal.SIGTERM


def test_busy_port_exits_1(tmp_path: Path) -> None:
    with run_comfyui(tmp_path / "a") as first:
        layout = Layout(tmp_path / "b")
        argv = command(sys.executable, first.port, layout)
        proc = subprocess.run(argv, cwd=FAKE_ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert f"Port {first.port} is already in use" in proc.stdout + proc.stderr
