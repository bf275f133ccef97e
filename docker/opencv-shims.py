#!/usr/bin/env python3
"""Exactly one OpenCV in ComfyUI's venv: opencv-contrib-python-headless, and stand-ins for the others.

    opencv-shims.py VERSION WHEEL_DIR > constraints.txt

opencv-python, opencv-python-headless, opencv-contrib-python and opencv-contrib-python-headless
all install the same `cv2` folder and overwrite each other in whatever order they land, so a node
that needs contrib functions (Frame-Interpolation's EISAI) breaks when another node's plain
opencv-python is installed after it. The contrib headless build has every function the others
have, without a GUI (none in a container).

This writes, into WHEEL_DIR, one metadata-only wheel per other name at VERSION, each requiring
opencv-contrib-python-headless==VERSION, and prints the constraints that pin the four names to
VERSION. Installed with `--find-links WHEEL_DIR`, every requirement on any of the four names
(a node's requirements.txt, or a package such as mediapipe or albumentations) is satisfied by
the one real build, and pip's or uv's check stays clean.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

REAL = "opencv-contrib-python-headless"
STAND_INS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python")
# A local version label sorts above the public release: with both offered, the resolver takes
# the stand-in, and `==VERSION` (no label) still matches it.
LABEL = "comfyuidocker"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def stand_in_wheel(name: str, version: str, wheel_dir: Path) -> Path:
    """A wheel for `name` with no files, only metadata that requires the real build."""
    dist = re.sub(r"[-_.]+", "_", name)
    full_version = f"{version}+{LABEL}"
    info = f"{dist}-{full_version}.dist-info"
    files = {
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {name}\n"
            f"Version: {full_version}\n"
            f"Summary: Stands in for {name}: cv2 comes from {REAL} (one OpenCV in the venv)\n"
            f"Requires-Dist: {REAL}=={version}\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: comfyui-docker\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel_dir.mkdir(parents=True, exist_ok=True)
    path = wheel_dir / f"{dist}-{full_version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not re.fullmatch(r"\d+(\.\d+)+", argv[1]):
        print("usage: opencv-shims.py VERSION WHEEL_DIR   (VERSION like 4.12.0.88)", file=sys.stderr)
        return 2
    version, wheel_dir = argv[1], Path(argv[2])
    for name in STAND_INS:
        stand_in_wheel(name, version, wheel_dir)
    for name in (REAL, *STAND_INS):
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
