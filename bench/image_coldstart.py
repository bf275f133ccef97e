"""Cold start in the image: boot -> ComfyUI ready, against the same ComfyUI launched directly.

    flock /tmp/cd-bench.lock .venv/bin/python bench/image_coldstart.py \\
        [--tag localhost/comfyui-docker:minimal-check] [--rounds 5] \\
        [--host-comfyui /tmp/real-comfyui --host-python /tmp/comfy-venv/bin/python]

Needs an image built by `make image-check` (buildah, root). Paired runs, alternating, medians:

  ours   the image booted as users boot it (`buildah run` of its entry point: tini, the runtime,
         nginx, ComfyUI supervised), timed to the first `/health` 200 on the public port and to
         ComfyUI's own /system_stats answering with our command line.
  peer 1 the same ComfyUI in the same image, launched directly (`buildah run` of main.py with the
         arguments the runtime gives it): the same files and bytecode, no runtime.
  peer 2 the same ComfyUI release on this machine, launched directly from a copy of the host
         checkout with its venv, bytecode compiled beforehand (a private PYTHONPYCACHEPREFIX,
         warmed by one untimed launch), with `--enable-manager` when that venv has ComfyUI-Manager's
         package (`pip install -r manager_requirements.txt`), as the image runs it.

Target: ratio ours / peer 1 <= 1.0 plus the runtime's own start (nothing written or compiled at
start: timestamp bytecode is fresh in the image). A ratio well above that means the image
compiles or writes something at every start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from image_check.container import Container, Ports, free_port, request, wait_for  # noqa: E402
from image_check.sources import runtime_ignore  # noqa: E402

READY_LIMIT = 180.0


def comfy_ready(port: int, output: str) -> bool:
    resp = request(port, "/system_stats", timeout=1)
    return resp.status == 200 and output in json.loads(resp.body)["system"]["argv"]


def comfy_args(port: int, ws: str, db: str) -> list[str]:
    return [
        "--listen", "127.0.0.1", "--port", str(port), "--cpu",
        "--output-directory", f"{ws}/output", "--input-directory", f"{ws}/uploads",
        "--user-directory", f"{ws}/user", "--database-url", f"sqlite:///{db}",
    ]  # fmt: skip


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    """False once the launch has exited: a crashed start fails at once, not after the time limit."""
    if proc.poll() is not None:
        raise SystemExit(f"the launch exited with {proc.returncode} before it was ready")
    return True


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """End a launch and everything it started (its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_ours(tag: str, work: Path) -> tuple[float, float]:
    ws = Path(tempfile.mkdtemp(dir=work))
    ports = Ports()
    ctr = Container(tag, ws, ports, work / "ours.log")
    try:
        ctr.boot()
        up = wait_for(lambda: request(ports.dashboard, "/health", timeout=1).status == 200, READY_LIMIT)
        health = time.monotonic() - ctr.started
        ready = wait_for(lambda: comfy_ready(ports.comfyui_internal, "/workspace/output"), READY_LIMIT)
        if up is None or ready is None:
            raise SystemExit(f"the image did not get ready (log: {work / 'ours.log'})")
        return health, time.monotonic() - ctr.started
    finally:
        ctr.stop(15)
        ctr.remove()
        shutil.rmtree(ws, ignore_errors=True)


def run_peer_image(tag: str, work: Path) -> float:
    ws = Path(tempfile.mkdtemp(dir=work))
    for sub in ("output", "uploads", "user"):
        (ws / sub).mkdir()
    port = free_port()
    ctr = Container(tag, ws, Ports(), work / "peer-image.log")
    launch = 'cd /app/comfyui/ComfyUI && exec /app/comfyui/venv/bin/python main.py --enable-manager "$@"'
    argv = ctr.run_argv(
        ["/bin/sh", "-c", launch, "sh", *comfy_args(port, "/workspace", "/tmp/bench-comfyui.db")], env={}
    )
    log = (work / "peer-image.log").open("ab")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = wait_for(lambda: _alive(proc) and comfy_ready(port, "/workspace/output"), READY_LIMIT)
        if ready is None:
            raise SystemExit(f"ComfyUI in the image did not get ready (log: {work / 'peer-image.log'})")
        return time.monotonic() - start
    finally:
        stop_tree(proc)
        log.close()
        ctr.remove()
        shutil.rmtree(ws, ignore_errors=True)


def host_copy(src: Path, work: Path) -> Path:
    """The host checkout's tracked files (never the original: nothing is written into it); of a
    folder without git, every file but ComfyUI's run-time folders and bytecode."""
    dest = work / "host-comfyui"
    if not (src / ".git").exists():
        shutil.copytree(src, dest, symlinks=True, ignore=runtime_ignore(src))
        return dest
    files = subprocess.run(
        ["git", "-C", str(src), "ls-files", "-z"], capture_output=True, text=True, check=True
    )
    for rel in filter(None, files.stdout.split("\0")):
        if (src / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)
    return dest


def has_manager(python: Path) -> bool:
    """Whether the host venv has ComfyUI-Manager's package (then peer 2 starts it, as the image does)."""
    probe = [
        str(python),
        "-c",
        "import importlib.util as u; raise SystemExit(u.find_spec('comfyui_manager') is None)",
    ]
    return subprocess.run(probe, capture_output=True).returncode == 0


def run_peer_host(root: Path, python: Path, work: Path, pycache: Path, manager: bool) -> float:
    ws = Path(tempfile.mkdtemp(dir=work))
    for sub in ("output", "uploads", "user"):
        (ws / sub).mkdir()
    port = free_port()
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log = (work / "peer-host.log").open("ab")
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(python), "main.py", *(["--enable-manager"] if manager else []),
         *comfy_args(port, str(ws), str(ws / "comfyui.db"))],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        ready = wait_for(lambda: _alive(proc) and comfy_ready(port, f"{ws}/output"), READY_LIMIT)
        if ready is None:
            raise SystemExit(f"the host ComfyUI did not get ready (log: {work / 'peer-host.log'})")
        return time.monotonic() - start
    finally:
        stop_tree(proc)
        log.close()
        shutil.rmtree(ws, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tag", default="localhost/comfyui-docker:minimal-check")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--host-comfyui", type=Path, default=Path(os.environ.get("COMFYUI_ROOT", "/tmp/real-comfyui"))
    )
    p.add_argument(
        "--host-python",
        type=Path,
        default=Path(os.environ.get("COMFYUI_PYTHON", "/tmp/comfy-venv/bin/python")),
    )
    args = p.parse_args()
    built = shutil.which("buildah") is not None and os.geteuid() == 0
    if built:
        built = bool(
            subprocess.run(
                ["buildah", "images", "-q", args.tag], capture_output=True, text=True
            ).stdout.strip()
        )
    if not built:  # `make bench` runs every benchmark: this one needs the image check's image
        print(f"skipped: needs buildah, root and the image {args.tag} (make image-check builds it)")
        return
    host = args.host_comfyui.is_dir() and args.host_python.is_file()
    work = Path(tempfile.mkdtemp(prefix="image-coldstart-"))
    try:
        pycache = work / "pycache"
        root = host_copy(args.host_comfyui, work) if host else None
        manager = host and has_manager(args.host_python)
        if root is not None:
            run_peer_host(root, args.host_python, work, pycache, manager)  # untimed: compiles the bytecode
        run_peer_image(args.tag, work)  # untimed: warms the page cache for the image's files
        health, ours, peer_image, peer_host = [], [], [], []
        for n in range(args.rounds):
            # A B C, then C B A: neither side always runs first after the other's shutdown
            steps = ["ours", "image", "host"] if n % 2 == 0 else ["host", "image", "ours"]
            for step in steps:
                if step == "ours":
                    h, r = run_ours(args.tag, work)
                    health.append(h)
                    ours.append(r)
                elif step == "image":
                    peer_image.append(run_peer_image(args.tag, work))
                elif root is not None:
                    peer_host.append(run_peer_host(root, args.host_python, work, pycache, manager))
            print(f"round {n + 1}: ours {r:.2f} s (/health {h:.2f} s), image direct {peer_image[-1]:.2f} s"
                  + (f", host direct {peer_host[-1]:.2f} s" if peer_host else ""), flush=True)  # fmt: skip
        mo, mi, mh = statistics.median(ours), statistics.median(peer_image), statistics.median(health)
        print(f"\nimage boot -> /health (public port):        median {mh:6.2f} s  runs {_s(health)}")
        print(f"image boot -> ComfyUI ready (ours):          median {mo:6.2f} s  runs {_s(ours)}")
        print(f"same ComfyUI in the image, direct (peer 1):  median {mi:6.2f} s  runs {_s(peer_image)}")
        print(f"ratio ours / peer 1: {mo / mi:.3f}")
        if peer_host:
            mp = statistics.median(peer_host)
            print(f"ComfyUI on this machine, direct (peer 2):    median {mp:6.2f} s  runs {_s(peer_host)}")
            how = "with" if manager else "without"
            print(f"ratio ours / peer 2: {mo / mp:.3f}  (peer 2 runs {how} the manager)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _s(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
