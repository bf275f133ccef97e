"""`buildah bud` of docker/Dockerfile's runtime target with the check's build args."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .config import DOCKERFILE, REPO, VARIANTS, CheckConfig, image_tag
from .run import Log, run


@dataclass
class Built:
    seconds: float
    size_bytes: int
    layers: list[dict[str, object]]  # created_by, diff id, size: the shared torch layer is one of them


def bud_argv(config: CheckConfig, contexts: dict[str, Path]) -> list[str]:
    argv = [
        "buildah", "bud", "--isolation", "chroot", "--layers", "--format", "docker", "--force-rm",
        "-f", str(DOCKERFILE), "--target", "runtime", "-t", config.tag,
    ]  # fmt: skip
    for key, value in config.build_args().items():
        argv += ["--build-arg", f"{key}={value}"]
    for stage, path in contexts.items():
        argv += ["--build-context", f"{stage}={path}"]
    return [*argv, str(REPO)]


def image_layers(tag: str) -> list[dict[str, object]]:
    """The image's layers with the instruction that made each (from its history)."""
    out = subprocess.run(
        ["buildah", "inspect", "--type", "image", tag], capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout)
    diff_ids = info["Docker"]["rootfs"]["diff_ids"]
    history = [h for h in info["Docker"]["history"] if not h.get("empty_layer")]
    layers = []
    for diff_id, h in zip(diff_ids, history, strict=False):
        layers.append({"diff_id": diff_id, "created_by": h.get("created_by", "")[-160:]})
    return layers


UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def image_size(tag: str) -> int:
    """Bytes, from buildah's own figure ("9.88 GB": it prints no raw number)."""
    out = subprocess.run(
        ["buildah", "images", "--json", tag], capture_output=True, text=True, check=True
    ).stdout
    value, unit = str(json.loads(out)[0]["size"]).split()
    return int(float(value) * UNITS[unit])


def build(config: CheckConfig, contexts: dict[str, Path], log: Log) -> Built:
    argv = bud_argv(config, contexts)
    log.say(f"build: {config.tag} (log: {log.path})")
    start = time.monotonic()
    run(argv, log, cwd=REPO)
    seconds = time.monotonic() - start
    return Built(seconds, image_size(config.tag), image_layers(config.tag))


def torch_layer(layers: list[dict[str, object]]) -> str | None:
    """The diff id of the runtime's first layer into /app/comfyui (`COPY --from=torch /app/comfyui`)."""
    for layer in layers:
        if re.search(r"COPY dir:\w+ in /app/comfyui $", str(layer["created_by"])):
            return str(layer["diff_id"])
    return None


def shared_torch_layer() -> dict[str, str | None]:
    """The torch layer of every check image there is now: equal ids mean one shared layer."""
    out = {}
    for variant in VARIANTS:
        tag = image_tag(variant)
        if (
            subprocess.run(["buildah", "inspect", "--type", "image", tag], capture_output=True).returncode
            == 0
        ):
            out[variant] = torch_layer(image_layers(tag))
    return out
