"""Real processes on one volume: two installers of the same file, and SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.model_host import ModelHost

from .conftest import MIB, blob, sha

SCRIPT = Path(__file__).with_name("install_proc.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def write_catalog(tmp: Path, url: str) -> Path:
    path = tmp / "catalog.yaml"
    path.write_text(
        f"presets:\n  BIG_ONE:\n    name: Big\n    type: video\n"
        f"    files: [{{path: diffusion_models/big.safetensors, url: '{url}'}}]\n"
    )
    return path


def spawn(root: Path, catalog: Path, connections: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(root), str(catalog), "BIG_ONE", str(connections)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_two_processes_install_the_same_file_once(tmp_path: Path) -> None:
    data = blob(6 * MIB, seed=5)
    with ModelHost(rate=4 * MIB) as host:
        url = host.add("/big", data)
        catalog = write_catalog(tmp_path, url)
        root = tmp_path / "workspace"
        procs = [spawn(root, catalog, 2), spawn(root, catalog, 2)]
        outs = [p.communicate(timeout=60) for p in procs]
        sent = host.bytes_sent
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out, err)
        assert json.loads(out)["state"] == "done"
    final = root / "models/diffusion_models/big.safetensors"
    assert sha(final.read_bytes()) == sha(data)
    # one download, not two (the second process waited, then found it); the first stream is
    # cut where the pieces begin, so what was already in flight past the cut is sent twice
    assert len(data) <= sent < len(data) * 1.5
    assert sorted(os.listdir(final.parent)) == ["big.safetensors"]
    assert list((root / "cache/locks").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("connections", [1, 3])
def test_sigkill_at_random_moments_then_restart_completes(tmp_path: Path, connections: int) -> None:
    data = blob(8 * MIB, seed=6)
    rng = random.Random(1234 + connections)
    with ModelHost(rate=3 * MIB) as host:
        url = host.add("/big", data)
        catalog = write_catalog(tmp_path, url)
        root = tmp_path / "workspace"
        final = root / "models/diffusion_models/big.safetensors"
        kills = 0
        for _ in range(3):
            proc = spawn(root, catalog, connections)
            # kill at a random point of the transfer (not during the interpreter's start-up)
            target = host.bytes_sent + rng.uniform(0.1, 0.35) * len(data)
            deadline = time.monotonic() + 30
            while host.bytes_sent < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is not None:
                proc.communicate()
                break
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
            kills += 1
            assert not final.exists() or sha(final.read_bytes()) == sha(data)
        proc = spawn(root, catalog, connections)
        out, err = proc.communicate(timeout=60)
        sent = host.bytes_sent
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "done"
    assert sha(final.read_bytes()) == sha(data)
    refetched = sent - len(data)
    print(
        f"\nSIGKILL x{kills}, {connections} connection(s): "
        f"{refetched / 1024:.0f} KiB fetched again of {len(data) // 1024} KiB"
    )
    assert kills >= 2
    # at most what was received but not yet flushed (256 KiB per flush, a block per connection) per kill
    assert refetched <= kills * (256 * 1024 + connections * 512 * 1024)
