"""Start-up benchmark: `comfyui-docker start` → first 200 from /health, and ComfyUI-ready overhead.

    .venv/bin/python bench/startup.py [--rounds 3] [--comfy-delay 12] [--bytecode cached|asis]

1. Dashboard: launch `start` (a subprocess, fake ComfyUI) and time the first 200 from /health,
   on an empty volume (A) and on one with 10,000 model files (B), alternating A B A B.
   Target: < 1 s, independent of the number of files.
2. ComfyUI ready: launch `start` and time until ComfyUI's /system_stats answers as ours, versus
   launching the same fake ComfyUI directly with the same arguments (the peer), alternating.
   The fake sleeps `--comfy-delay` seconds before listening (the real ComfyUI takes 12-18 s on
   this machine, COMFYUI.md §7) so the ratio compares like with like. Target ratio <= 1.05.

Bytecode: the image's venv is compiled at build (UV_COMPILE_BYTECODE=1 in docker/Dockerfile), so by
default (`--bytecode cached`) every process here gets a private bytecode cache too
(PYTHONPYCACHEPREFIX in the temp folder, warmed by one untimed launch of each). With
`--bytecode asis` they get this environment unchanged: where it sets PYTHONDONTWRITEBYTECODE=1 and
the venv holds no .pyc files (a dev checkout here), every launch, ours and the peer's, compiles
every module it imports from source, which about doubles both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakes" / "comfyui_root"
CLI = [sys.executable, "-m", "comfyui_docker", "start"]
ENV: dict[str, str] = dict(os.environ)  # what every launched process gets (see --bytecode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status)
    except OSError:
        return 0


def comfy_ready(port: int, output: Path) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/system_stats", timeout=1) as resp:
            return str(output) in json.loads(resp.read())["system"]["argv"]
    except (OSError, ValueError, KeyError):
        return False


def populate(ws: Path, count: int) -> None:
    folders = ["checkpoints", "loras", "vae", "text_encoders", "diffusion_models"]
    for i in range(count):
        folder = ws / "models" / folders[i % len(folders)] / f"sub{i % 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"model_{i:05d}.safetensors").write_bytes(b"x")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def launch_start(ws: Path, comfy_delay: float) -> tuple[subprocess.Popen[bytes], int, int]:
    dash, comfy = free_port(), free_port()
    env = {
        **ENV,
        "WORKSPACE_ROOT": str(ws),
        "COMFYUI_ROOT": str(FAKE),
        "COMFYUI_PYTHON": sys.executable,
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(dash),
        "COMFYUI_INTERNAL_PORT": str(comfy),
        "FAKE_COMFYUI_START_DELAY": str(comfy_delay),
        "COMFYUI_PASS_ENV": "FAKE_COMFYUI_START_DELAY",  # ComfyUI sees only what is passed
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        CLI, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    return proc, dash, comfy


def time_dashboard(ws: Path) -> float:
    started = time.perf_counter()
    proc, dash, _ = launch_start(ws, 30.0)
    try:
        while status(f"http://127.0.0.1:{dash}/health") != 200:
            if proc.poll() is not None:
                raise RuntimeError("start exited")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        stop(proc)


BARE_APP = """
import sys
import fastapi, uvicorn
app = fastapi.FastAPI()

@app.get("/health")
async def health():
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def time_bare_uvicorn() -> float:
    """The peer: a bare FastAPI app on uvicorn, launch to its first 200 from /health."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while status(f"http://127.0.0.1:{port}/health") != 200:
            if proc.poll() is not None:
                raise RuntimeError("bare app exited")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        stop(proc)


def time_comfy_via_start(ws: Path, delay: float) -> float:
    started = time.perf_counter()
    proc, _, comfy = launch_start(ws, delay)
    try:
        while not comfy_ready(comfy, ws / "output"):
            if proc.poll() is not None:
                raise RuntimeError("start exited")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        stop(proc)


def time_comfy_direct(ws: Path, delay: float) -> float:
    port = free_port()
    argv = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port)]
    argv += ["--output-directory", str(ws / "output"), "--input-directory", str(ws / "uploads")]
    argv += ["--user-directory", str(ws / "user"), "--extra-model-paths-config"]
    argv += [str(ws / "config" / "extra_model_paths.yaml"), "--cpu"]
    env = {**ENV, "FAKE_COMFYUI_START_DELAY": str(delay)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=FAKE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while not comfy_ready(port, ws / "output"):
            if proc.poll() is not None:
                raise RuntimeError("ComfyUI exited")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--comfy-delay", type=float, default=12.0)
    parser.add_argument("--bytecode", choices=("cached", "asis"), default="cached")
    args = parser.parse_args()
    # children must get SIGINT's default action even when this bench was started with `&` (which
    # ignores SIGINT, an ignore that children inherit: the directly launched ComfyUI would not stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        empty, full = tmp / "empty", tmp / "full"
        full.mkdir()
        populate(full, args.files)
        if args.bytecode == "cached":
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            time_dashboard(empty)  # untimed: fills the cache for start, the fake ComfyUI, the peer
            time_bare_uvicorn()
        print(
            f"bytecode: {args.bytecode} (PYTHONDONTWRITEBYTECODE={ENV.get('PYTHONDONTWRITEBYTECODE', '')!r}, "
            f"PYTHONPYCACHEPREFIX={ENV.get('PYTHONPYCACHEPREFIX', '')!r})"
        )
        a: list[float] = []
        b: list[float] = []
        bare: list[float] = []
        for _ in range(args.rounds):
            shutil.rmtree(empty, ignore_errors=True)
            a.append(time_dashboard(empty))
            bare.append(time_bare_uvicorn())
            b.append(time_dashboard(full))
        ma, mb, mp = statistics.median(a), statistics.median(b), statistics.median(bare)
        print(f"dashboard /health 200, empty volume:        median {ma * 1000:7.0f} ms  runs {_ms(a)}")
        print(f"dashboard /health 200, {args.files} model files: median {mb * 1000:7.0f} ms  runs {_ms(b)}")
        print(f"bare FastAPI hello app on uvicorn (peer):   median {mp * 1000:7.0f} ms  runs {_ms(bare)}")
        print(
            f"  ratio files/empty: {mb / ma:.2f}   ours/bare: {ma / mp:.2f}"
            "   target: < 1000 ms, files/empty ~1.0"
        )
        via: list[float] = []
        direct: list[float] = []
        for _ in range(args.rounds):
            via.append(time_comfy_via_start(empty, args.comfy_delay))
            direct.append(time_comfy_direct(empty, args.comfy_delay))
        mv, md = statistics.median(via), statistics.median(direct)
        label = f"ComfyUI ready through `start` (fake, {args.comfy_delay:g} s boot)"
        print(f"{label}: median {mv:6.2f} s  runs {_s(via)}")
        print(f"ComfyUI ready launched directly (peer):            median {md:6.2f} s  runs {_s(direct)}")
        print(f"  ratio start/direct: {mv / md:.3f}   target: <= 1.05")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def _s(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
