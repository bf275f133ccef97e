"""`comfyui-docker init` on an empty volume vs one holding 10,000 model files.

Target: the same time (start-up work must not grow with the files on the volume). The peer
figure is the same command on the empty volume; runs alternate A B A B and medians are quoted.

    .venv/bin/python bench/init.py [--files 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comfyui_docker.model_paths import MODEL_FOLDERS
from comfyui_docker.workspace import Workspace

EXE = str(Path(sys.executable).with_name("comfyui-docker"))


def populate(root: Path, count: int) -> None:
    ws = Workspace(root)
    ws.init()
    for i in range(count):
        folder = ws.model_folder(MODEL_FOLDERS[i % len(MODEL_FOLDERS)])
        sub = folder / f"batch{i % 20}"
        sub.mkdir(exist_ok=True)
        (sub / f"model_{i:05d}.safetensors").write_bytes(b"\0" * 16)


def time_cli(root: Path) -> float:
    env = {**os.environ, "WORKSPACE_ROOT": str(root)}
    t0 = time.perf_counter()
    subprocess.run([EXE, "init"], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def time_inproc(root: Path, n: int = 20) -> float:
    ws = Workspace(root)
    t0 = time.perf_counter()
    for _ in range(n):
        ws.init()
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        Workspace(empty).init()
        populate(full, args.files)
        cli_empty, cli_full, in_empty, in_full = [], [], [], []
        for _ in range(args.rounds):
            cli_empty.append(time_cli(empty))
            cli_full.append(time_cli(full))
            in_empty.append(time_inproc(empty))
            in_full.append(time_inproc(full))
    m = statistics.median
    print(f"comfyui-docker init, median of {args.rounds} alternating runs")
    print(
        f"  CLI (process start included): empty {m(cli_empty) * 1000:7.1f} ms   "
        f"{args.files} files {m(cli_full) * 1000:7.1f} ms   ratio {m(cli_full) / m(cli_empty):.2f}"
    )
    print(
        f"  Workspace.init() in-process:  empty {m(in_empty) * 1000:7.2f} ms   "
        f"{args.files} files {m(in_full) * 1000:7.2f} ms   ratio {m(in_full) / m(in_empty):.2f}"
    )


if __name__ == "__main__":
    main()
