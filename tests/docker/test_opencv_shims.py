"""docker/opencv-shims.py: one OpenCV in ComfyUI's venv, whatever name a node asks for.

The stand-ins are installed for real with uv (offline, from the folder the script writes), next
to a local stand-in for the real contrib build: every name resolves, and only one `cv2` exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from image_helpers import DOCKER
from test_install_custom_nodes import wheel

SCRIPT = DOCKER / "opencv-shims.py"
VERSION = "4.12.0.88"


def shims(folder: Path, version: str = VERSION) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), version, str(folder)], capture_output=True, text=True, timeout=60
    )


def test_constraints_and_metadata_only_wheels(tmp_path: Path) -> None:
    proc = shims(tmp_path / "wheels")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        f"opencv-contrib-python-headless=={VERSION}",
        f"opencv-python=={VERSION}",
        f"opencv-python-headless=={VERSION}",
        f"opencv-contrib-python=={VERSION}",
    ]
    made = sorted(p.name for p in (tmp_path / "wheels").iterdir())
    assert made == [
        f"opencv_contrib_python-{VERSION}+comfyuidocker-py3-none-any.whl",
        f"opencv_python-{VERSION}+comfyuidocker-py3-none-any.whl",
        f"opencv_python_headless-{VERSION}+comfyuidocker-py3-none-any.whl",
    ]
    with zipfile.ZipFile(tmp_path / "wheels" / made[1]) as zf:
        names = zf.namelist()
        assert all(n.startswith(f"opencv_python-{VERSION}+comfyuidocker.dist-info/") for n in names)  # no cv2
        meta = zf.read(f"opencv_python-{VERSION}+comfyuidocker.dist-info/METADATA").decode()
    assert f"Requires-Dist: opencv-contrib-python-headless=={VERSION}" in meta


def test_every_opencv_name_installs_the_one_build(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv on PATH (make install puts it there)")
    wheels = tmp_path / "wheels"
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(shims(wheels).stdout)
    # the real contrib build stands here as a small wheel that brings the `cv2` package
    real = tmp_path / "real"
    real.mkdir()
    wheel(real, "opencv_contrib_python_headless", VERSION)
    (tmp_path / "reqs.txt").write_text("opencv-python>=4.6\nopencv-contrib-python\nopencv-python-headless\n")
    env = {**os.environ, "UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_PYTHON_DOWNLOADS": "never",
           "UV_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    py = str(venv / "bin" / "python")
    proc = subprocess.run(
        [uv, "pip", "install", "--python", py, "--constraint", str(constraints), "--find-links", str(wheels),
         "--find-links", str(real), "-r", str(tmp_path / "reqs.txt")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([uv, "pip", "check", "--python", py], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert sorted(
        p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and not p.name.startswith("_")
    ) == ["opencv_contrib_python_headless"]  # one package with code; the three other names are metadata only


def test_bad_version() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "latest", "/tmp/x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
