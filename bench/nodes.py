"""Custom-node benchmarks: what the start-up phase adds, and the first install of a node.

    flock /tmp/cd-bench.lock .venv/bin/python bench/nodes.py [--rounds 5] [--python PY]
        [--requirement termcolor] [--skip-install]

1. The `custom nodes` phase of `comfyui-docker start`, in a fresh process each time (its imports
   count), on a volume with 0 and with 20 nodes whose requirements are met (the hash cache is
   warm: the steady state of every start after the first). Target: < 300 ms added. The peer is
   what a start pays without a hash cache: one `pip install -r` over the same 20 requirement files
   (all satisfied, so pip installs nothing), the check images that reinstall node requirements at
   every start run. Also shown: the first start that sees the 20 nodes (hashes unknown: one check
   in ComfyUI's Python, no pip), and a first start on a new layer (everything to the background).
2. The first install of a node whose one requirement comes from the package index:
   `comfyui-docker nodes install FOLDER` into an empty volume, against a bare
   `python -m pip install --prefix DIR REQUIREMENT` with the same interpreter (the same download,
   without the copy, the constraints and the bookkeeping). Both use pip's cache as it is.

Alternating A B A B..., medians. ComfyUI's Python (`--python`, default $COMFYUI_PYTHON, else the
real ComfyUI's venv at /tmp/comfy-venv-head, else this Python's base) is never changed: the bench
makes its own venv whose `.pth` names that Python's site-packages (as a new image venv would have
the same packages), and the layer hook goes into that one.

Bytecode: like bench/startup.py, every process gets a private bytecode cache (PYTHONPYCACHEPREFIX),
warmed by one untimed round, as the image's compiled venvs behave.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_ROOT = REPO / "tests" / "fakes" / "comfyui_root"  # a folder with main.py: ComfyUI "installed"
MET = ["numpy", "pillow", "pyyaml", "requests", "tqdm", "safetensors", "aiohttp", "psutil"]

PHASE = r"""
import asyncio, json, sys, time
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
import comfyui_docker.startup  # already imported by `start` before the phase

async def main():
    services = Services.create(Settings.from_env())
    started = time.perf_counter()
    from comfyui_docker.nodes.startup import run_phase
    plan = await run_phase(services)
    took = time.perf_counter() - started
    print(json.dumps({"ms": took * 1000, "detail": plan.detail, "left_out": plan.left_out}))

asyncio.run(main())
"""

WARM = r"""
import asyncio
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.nodes.startup import finish, run_phase

async def main():
    services = Services.create(Settings.from_env())
    plan = await run_phase(services)
    await finish(services.nodes, plan)  # what the runtime's background task does

asyncio.run(main())
"""


def default_python() -> Path:
    env = os.environ.get("COMFYUI_PYTHON")
    if env:
        return Path(env)
    real = Path("/tmp/comfy-venv-head/bin/python")
    return real if real.exists() else Path(sys.base_prefix) / "bin" / "python3"


def image_venv(base: Path, like: Path) -> Path:
    """A venv with `like`'s packages through a .pth (nothing copied, `like` untouched)."""
    out = subprocess.run(
        [
            str(like),
            "-c",
            "import json, sys; print(json.dumps([p for p in sys.path if p.endswith('-packages')]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run([str(like), "-m", "venv", str(base)], check=True)
    python = base / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "image-packages.pth").write_text("\n".join(json.loads(out.stdout)) + "\n")
    return python


def present(python: Path, names: list[str]) -> list[str]:
    code = (
        "import json, sys\nfrom importlib import metadata\nout = []\n"
        "for n in sys.argv[1:]:\n    try:\n        metadata.version(n); out.append(n)\n"
        "    except metadata.PackageNotFoundError:\n        pass\nprint(json.dumps(out))"
    )
    run = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True, text=True)
    return list(json.loads(run.stdout))


def volume(base: Path, nodes: int, requirements: list[str]) -> Path:
    ws = base / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    for i in range(nodes):
        node = ws / "custom_nodes" / f"node_{i:02d}"
        node.mkdir(parents=True)
        (node / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
        picked = [requirements[(i + k) % len(requirements)] for k in range(3)]
        (node / "requirements.txt").write_text("\n".join(picked) + "\n")
    return ws


def env_for(ws: Path, python: Path, pycache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "WORKSPACE_ROOT": str(ws),
            "COMFYUI_ROOT": str(FAKE_ROOT),
            "COMFYUI_PYTHON": str(python),
            "PYTHONPYCACHEPREFIX": str(pycache),
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def phase(ws: Path, python: Path, pycache: Path) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", PHASE],
        env=env_for(ws, python, pycache),
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return float(data["ms"]), str(data["detail"])


def warm(ws: Path, python: Path, pycache: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", WARM], env=env_for(ws, python, pycache), check=True, capture_output=True
    )


def forget(ws: Path) -> None:
    """Keep the layer, forget every node's hash (as after copying 20 nodes onto the volume)."""
    for state in (ws / "python").glob("*/state.json"):
        state.write_text('{"version": 1, "nodes": {}}\n')


def pip_r(ws: Path, python: Path, pycache: Path) -> float:
    files = sorted((ws / "custom_nodes").glob("*/requirements.txt"))
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for f in files:
        argv += ["-r", str(f)]
    started = time.perf_counter()
    subprocess.run(argv, env=env_for(ws, python, pycache), check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def install_ours(base: Path, python: Path, pycache: Path, requirement: str) -> float:
    ws = base / "install-ws"
    shutil.rmtree(ws, ignore_errors=True)
    src = base / "src" / "one_req_node"
    src.mkdir(parents=True, exist_ok=True)
    (src / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (src / "requirements.txt").write_text(requirement + "\n")
    argv = [sys.executable, "-m", "comfyui_docker", "nodes", "install", str(src), "-q"]
    started = time.perf_counter()
    subprocess.run(argv, env=env_for(ws, python, pycache), check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def install_bare(base: Path, python: Path, pycache: Path, requirement: str) -> float:
    prefix = base / "bare-prefix"
    shutil.rmtree(prefix, ignore_errors=True)
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--prefix", str(prefix)]
    started = time.perf_counter()
    subprocess.run([*argv, requirement], env=env_for(base, python, pycache), check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def report(label: str, ours: list[float], peer_label: str, peer: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(peer)
    print(f"  {label:<52} {a:9.1f} ms   (runs: {', '.join(f'{x:.0f}' for x in ours)})")
    print(f"  {peer_label:<52} {b:9.1f} ms   (runs: {', '.join(f'{x:.0f}' for x in peer)})")
    print(f"  {'ratio ours / peer':<52} {a / b:9.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--python", type=Path, default=default_python(), help="ComfyUI's Python (left untouched)")
    ap.add_argument("--requirement", default="termcolor", help="the one requirement of the installed node")
    ap.add_argument("--skip-install", action="store_true", help="only the start-up phase (no package index)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cd-bench-nodes-"))
    try:
        python = image_venv(base / "image", args.python)
        pycache = base / "pycache"
        met = present(python, MET)
        print(f"ComfyUI's Python: {args.python} (bench venv {python}); met requirements: {', '.join(met)}")
        empty, twenty = volume(base / "v0", 0, met), volume(base / "v20", 20, met)
        phase(empty, python, pycache)  # warm: bytecode, the hook
        new_ms, new_detail = phase(twenty, python, pycache)
        warm(twenty, python, pycache)  # the background fill of the new layer
        forget(twenty)
        first_ms, first_detail = phase(twenty, python, pycache)
        print(f"\n1. start-up phase `custom nodes` (fresh process each, {args.rounds} rounds, medians)")
        print(f"  first start on a new layer, 20 nodes: {new_ms:.1f} ms ({new_detail})")
        print(f"  first start that sees 20 nodes on a known layer: {first_ms:.1f} ms ({first_detail})")
        zero, full, peer = [], [], []
        for _ in range(args.rounds):
            zero.append(phase(empty, python, pycache)[0])
            ms, detail = phase(twenty, python, pycache)
            assert "checked" not in detail and "background" not in detail, detail  # the warm path
            full.append(ms)
            peer.append(pip_r(twenty, python, pycache))
        print(f"  phase with 0 volume nodes: {statistics.median(zero):.1f} ms")
        report(
            "phase, 20 nodes, requirements met (target < 300)",
            full,
            "peer: pip install -r x20 (all met)",
            peer,
        )
        if args.skip_install:
            return 0
        print(f"\n2. first install of a node with one requirement ({args.requirement})")
        try:  # warm: pip's cache, bytecode
            install_bare(base, python, pycache, args.requirement)
        except subprocess.CalledProcessError as exc:
            why = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["pip failed"]
            print(f"  not measured: pip cannot install {args.requirement} here ({why[0]}); --skip-install")
            return 0
        install_ours(base, python, pycache, args.requirement)
        ours, bare = [], []
        for _ in range(args.rounds):
            ours.append(install_ours(base, python, pycache, args.requirement))
            bare.append(install_bare(base, python, pycache, args.requirement))
        report(
            "comfyui-docker nodes install FOLDER",
            ours,
            f"peer: pip install --prefix DIR {args.requirement}",
            bare,
        )
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
