"""`make image-check` builds the Dockerfile users build: its build args, the bake file and the
check script stay in agreement. Fast: nothing is built here (CI never builds images)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from bake_hcl import bake_print
from dockerfile_model import Dockerfile, parse
from image_helpers import DOCKER, REPO

sys.path.insert(0, str(REPO / "scripts"))

from image_check import build, config, sources


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKER / "Dockerfile")


@pytest.fixture(scope="module")
def bake() -> dict:
    return bake_print((DOCKER / "docker-bake.hcl").read_text(encoding="utf-8"))


def defaults(dockerfile: Dockerfile) -> dict[str, str | None]:
    out = dict(dockerfile.global_args)
    for stage in dockerfile.stages.values():
        for key, value in stage.args().items():
            if value is not None:
                out[key] = value
    return out


def test_the_check_sets_only_declared_build_args(dockerfile: Dockerfile) -> None:
    cfg = config.CheckConfig("minimal", None, None, Path("/w"))
    assert set(cfg.build_args()) == set(config.CHECK_BUILD_ARGS)
    assert set(config.CHECK_BUILD_ARGS) <= dockerfile.all_args
    argv = build.bud_argv(cfg, dict.fromkeys(config.SOURCE_STAGES, Path("/src")))
    set_args = [argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv) if a == "--build-arg"]
    assert sorted(set_args) == sorted(config.CHECK_BUILD_ARGS)
    # the file users build, its runtime target; docker format keeps HEALTHCHECK and SHELL
    assert argv[argv.index("-f") + 1] == str(DOCKER / "Dockerfile")
    assert argv[argv.index("--target") + 1] == "runtime"
    assert argv[argv.index("--format") + 1] == "docker"
    assert argv[argv.index("--isolation") + 1] == "chroot"
    assert "--force-rm" in argv  # a failed step leaves no working container (and its disk) behind
    assert argv[-1] == str(REPO)


def test_the_replaced_stages_are_the_dockerfiles_source_stages(dockerfile: Dockerfile) -> None:
    argv = build.bud_argv(
        config.CheckConfig("full", None, None, Path("/w")), dict.fromkeys(config.SOURCE_STAGES, Path("/s"))
    )
    contexts = [argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv) if a == "--build-context"]
    assert contexts == list(config.SOURCE_STAGES)
    for stage in config.SOURCE_STAGES:
        assert dockerfile.stages[stage].base == "scratch"  # a plain tree: a folder can stand in


def test_the_check_builds_the_default_cuda_of_the_bake_file(dockerfile: Dockerfile, bake: dict) -> None:
    """PyPI's torch is the CUDA 12.8 build: the Dockerfile's defaults, bake's DEFAULT_CUDA."""
    d = defaults(dockerfile)
    target = bake["target"]["standard-cu128"]["args"]
    assert d["CUDA_VERSION"] == target["CUDA_VERSION"] == "12.8"
    for key in ("TORCH_VERSION", "TORCHVISION_VERSION", "TORCHAUDIO_VERSION", "COMFYUI_VERSION"):
        assert d[key] == target[key], key
    assert re.search(
        r'variable "DEFAULT_CUDA" \{\s*default = "12\.8"', (DOCKER / "docker-bake.hcl").read_text()
    )
    assert config.TORCH_INDEX == "https://pypi.org/simple"


def test_the_check_base_is_the_release_of_the_published_base(dockerfile: Dockerfile) -> None:
    d = defaults(dockerfile)
    assert d["BASE_IMAGE"] == f"debian:{config.DEBIAN_SUITE}-slim"
    assert d["NODE_IMAGE"] == f"node:{config.NODE_MAJOR}-{config.DEBIAN_SUITE}-slim"
    assert config.NODE_VERSION.split(".")[0] == config.NODE_MAJOR
    assert config.BASE_IMAGE.startswith("localhost/") and config.NODE_IMAGE.startswith("localhost/")


def test_variants_agree_with_the_bake_file_and_the_installer(bake: dict) -> None:
    built = {t["args"]["VARIANT"] for n, t in bake["target"].items() if not n.startswith("_")}
    assert set(config.VARIANTS) == built
    script = (DOCKER / "install-custom-nodes.sh").read_text()
    for variant in config.VARIANTS:
        m = re.search(rf"^\s*{variant}\) names=\(([^)]*)\)", script, re.MULTILINE)
        assert m, variant
        lists = m.group(1).split()
        expected = [n for name in lists for n in _listed(name)]
        assert [n.name for n in sources.variant_nodes(variant)] == expected


def _listed(name: str) -> list[str]:
    out = []
    for raw in (DOCKER / "custom_nodes" / f"{name}.txt").read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            out.append(raw.split()[0].rstrip("/").rsplit("/", 1)[1])
    return out


def test_the_comfyui_pin_is_the_dockerfiles(dockerfile: Dockerfile) -> None:
    d = defaults(dockerfile)
    version, commit = sources.comfyui_pin()
    assert f"v{version}" == d["COMFYUI_VERSION"]
    assert commit == d["COMFYUI_COMMIT"] and re.fullmatch(r"[0-9a-f]{40}", commit)


def test_make_test_never_builds_images() -> None:
    makefile = (REPO / "Makefile").read_text()
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test_recipe and "image" not in test_recipe.group(0)
    check = re.search(r"^image-check:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert check is not None
    for var in ("COMFYUI_SRC", "NODES_SRC", "VARIANT"):
        assert f'{var}="$({var})"' in check.group(1)
    assert "-m image_check" in check.group(1)
