"""docker/layer-delta.py: what the variant adds on top of the shared torch layer, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from image_helpers import DOCKER

SCRIPT = DOCKER / "layer-delta.py"


def write(path: Path, text: str, mtime: int = 1_700_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def delta(base: Path, tree: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(base), str(tree), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (f"-> {os.readlink(p)}" if p.is_symlink() else p.read_text())
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_only_new_and_changed_paths_and_the_tree_is_rebuilt_exactly(tmp_path: Path) -> None:
    base, tree, out = tmp_path / "base", tmp_path / "tree", tmp_path / "out"
    for root in (base, tree):  # what the torch stage made, unchanged in the later tree
        write(root / "venv/lib/site-packages/torch/__init__.py", "torch")
        write(root / "venv/lib/site-packages/nvidia/cublas.so", "x" * 1000)
        (root / "venv/bin").mkdir(parents=True)
        os.symlink("/usr/bin/python3.11", root / "venv/bin/python")
    write(base / "venv/bin/pip", "old pip")
    write(tree / "venv/bin/pip", "new pip", mtime=1_800_000_000)  # rewritten by a later install
    write(tree / "venv/lib/site-packages/cv2/__init__.py", "cv2")  # added
    write(tree / "ComfyUI/main.py", "main")
    os.symlink("python", tree / "venv/bin/python3")
    (tree / "ComfyUI/models/empty").mkdir(parents=True)
    os.utime(tree / "ComfyUI", (1_650_000_000, 1_650_000_000))

    proc = delta(base, tree, out)
    assert proc.returncode == 0, proc.stderr
    assert files(out) == {
        "ComfyUI/main.py": "main",
        "venv/bin/pip": "new pip",
        "venv/bin/python3": "-> python",
        "venv/lib/site-packages/cv2/__init__.py": "cv2",
    }
    assert (out / "ComfyUI/models/empty").is_dir()  # empty folders come along
    assert (out / "ComfyUI").stat().st_mtime == 1_650_000_000  # metadata kept (timestamp bytecode)
    assert (out / "venv/bin/pip").stat().st_mtime == 1_800_000_000
    assert "4 files" in proc.stdout

    # the base layer, then the delta on top, is the tree
    merged = tmp_path / "merged"
    subprocess.run(["cp", "-a", f"{base}/.", str(merged)], check=True)
    subprocess.run(["cp", "-a", f"{out}/.", str(merged)], check=True)
    assert files(merged) == files(tree)


def test_a_path_lost_from_the_base_layer_fails(tmp_path: Path) -> None:
    """A layer cannot delete what the layer below holds: a replaced base package is an error."""
    base, tree = tmp_path / "base", tmp_path / "tree"
    write(base / "venv/lib/site-packages/sympy-1.13.dist-info/METADATA", "old")
    write(tree / "venv/lib/site-packages/sympy-1.14.dist-info/METADATA", "new")
    proc = delta(base, tree, tmp_path / "out")
    assert proc.returncode == 1
    assert "sympy-1.13.dist-info" in proc.stderr and "gone" in proc.stderr


def test_usage() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage" in proc.stderr
