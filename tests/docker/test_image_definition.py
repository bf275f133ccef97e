"""The image's definition: bake matrix, Dockerfile, node lists, .dockerignore, hadolint, shellcheck.

There is no Docker engine here; `bake_hcl` evaluates the bake file the way `docker buildx bake
--print` does for the subset it uses, and `dockerfile_model` reads the Dockerfile.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from bake_hcl import bake_print, expand
from dockerfile_model import Dockerfile, copy_sources, parse
from image_helpers import DOCKER, REPO

from comfyui_docker.settings import Settings

VARIANTS = ("minimal", "standard", "full", "dev")
CUDAS = {"12.6": "cu126", "12.8": "cu128", "13.0": "cu130"}
BAKE = DOCKER / "docker-bake.hcl"
NODE_LISTS = DOCKER / "custom_nodes"
BIN = REPO / ".venv" / "bin"


@pytest.fixture(scope="module")
def bake() -> dict:
    return bake_print(BAKE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKER / "Dockerfile")


# ---- bake ------------------------------------------------------------------------------------
def test_all_builds_every_variant_for_every_cuda(bake: dict) -> None:
    names = expand(bake, ["all"])
    assert sorted(names) == sorted(f"{v}-{tag}" for v in VARIANTS for tag in CUDAS.values())
    assert expand(bake, ["default"]) == [f"standard-{tag}" for tag in CUDAS.values()]
    for variant in VARIANTS:
        assert expand(bake, [variant]) == [f"{variant}-{tag}" for tag in CUDAS.values()]


def test_tags(bake: dict) -> None:
    every_tag: list[str] = []
    for variant in VARIANTS:
        for version, tag in CUDAS.items():
            target = bake["target"][f"{variant}-{tag}"]
            expected = [f"docker.io/comfyuidocker/comfyui:{variant}-{tag}"]
            if version == "12.8":  # DEFAULT_CUDA
                expected.append(f"docker.io/comfyuidocker/comfyui:{variant}")
            assert target["tags"] == expected
            every_tag += target["tags"]
    assert len(every_tag) == len(set(every_tag))


def test_registry_and_default_cuda_come_from_the_environment() -> None:
    resolved = bake_print(BAKE.read_text(), {"REGISTRY": "ghcr.io/me", "DEFAULT_CUDA": "13.0"})
    assert resolved["target"]["full-cu130"]["tags"] == [
        "ghcr.io/me/comfyui:full-cu130",
        "ghcr.io/me/comfyui:full",
    ]
    assert resolved["target"]["full-cu128"]["tags"] == ["ghcr.io/me/comfyui:full-cu128"]


def test_cuda_matrix_is_consistent(bake: dict) -> None:
    for variant in VARIANTS:
        for version, tag in CUDAS.items():
            args = bake["target"][f"{variant}-{tag}"]["args"]
            assert args["VARIANT"] == ("full" if variant == "dev" else variant)
            assert args["CUDA_VERSION"] == version
            # one Debian base for every CUDA version: the CUDA libraries come with torch
            assert "BASE_IMAGE" not in args
            assert args["TORCH_INDEX"] == f"https://download.pytorch.org/whl/{tag}"
            # torch 2.9 is the first release with wheels for all three CUDA versions
            assert tuple(int(x) for x in args["TORCH_VERSION"].split(".")[:2]) >= (2, 9)
            assert args["TORCHVISION_VERSION"] and args["TORCHAUDIO_VERSION"]
            assert re.fullmatch(r"v\d+\.\d+\.\d+", args["COMFYUI_VERSION"])


def test_dev_reuses_fulls_layers(bake: dict) -> None:
    """dev is full plus tools: the same build args, so it never resolves a venv of its own."""
    for tag in CUDAS.values():
        dev, full = bake["target"][f"dev-{tag}"], bake["target"][f"full-{tag}"]
        assert dev["args"] == full["args"]
        assert (dev["target"], full["target"]) == ("dev", "runtime")


def test_release_labels_never_touch_the_build_cache(bake: dict, dockerfile: Dockerfile) -> None:
    """Version, revision and date are bake labels (set on the finished image), not build args."""
    for name, target in bake["target"].items():
        if name.startswith("_"):
            continue
        assert {"org.opencontainers.image.version", "org.opencontainers.image.revision",
                "org.opencontainers.image.created"} <= set(target["labels"])  # fmt: skip
        assert not {"REVISION", "CREATED", "VERSION"} & set(target["args"])
    assert not {"REVISION", "CREATED", "VERSION"} & dockerfile.all_args
    resolved = bake_print(BAKE.read_text(), {"REVISION": "abc123", "CREATED": "2026-12-04T00:00:00Z"})
    labels = resolved["target"]["standard-cu128"]["labels"]
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert labels["org.opencontainers.image.created"] == "2026-12-04T00:00:00Z"


def test_bake_and_dockerfile_agree(bake: dict, dockerfile: Dockerfile) -> None:
    assert (REPO / "docker" / "Dockerfile").is_file()
    for name, target in bake["target"].items():
        if name.startswith("_"):
            continue
        assert target["context"] == "."
        assert (REPO / target["dockerfile"]) == DOCKER / "Dockerfile"
        assert target["target"] in dockerfile.stages, name
        unknown = set(target["args"]) - dockerfile.all_args
        assert not unknown, f"{name} sets build args the Dockerfile never declares: {unknown}"
    assert {t["target"] for n, t in bake["target"].items() if not n.startswith("_")} == {"runtime", "dev"}


def test_a_plain_docker_build_gives_the_default_image(bake: dict, dockerfile: Dockerfile) -> None:
    """The Dockerfile's own defaults are those of standard for DEFAULT_CUDA."""
    args = bake["target"]["standard-cu128"]["args"]
    defaults: dict[str, str | None] = dict(dockerfile.global_args)
    for stage in dockerfile.stages.values():
        for key, value in stage.args().items():
            if value is not None:
                assert defaults.get(key) in (None, value), f"ARG {key} has two defaults"
                defaults[key] = value
    for key in ("TORCH_INDEX", "TORCH_VERSION", "TORCHVISION_VERSION", "TORCHAUDIO_VERSION",
                "VARIANT", "CUDA_VERSION", "COMFYUI_VERSION"):  # fmt: skip
        assert defaults[key] == args[key], key
    assert defaults["BASE_IMAGE"] == "debian:bookworm-slim"
    assert defaults["NODE_IMAGE"] == "node:22-bookworm-slim"  # the same Debian release


# ---- Dockerfile ------------------------------------------------------------------------------
def test_stages_and_what_the_runtime_copies(dockerfile: Dockerfile) -> None:
    assert list(dockerfile.stages) == [
        "frontend", "base-system", "python-builder", "comfyui-git", "comfyui-source", "custom-nodes-git",
        "custom-nodes-source", "torch", "comfyui-builder", "dashboard-builder", "runtime", "dev",
    ]  # fmt: skip
    stages = dockerfile.stages
    assert stages["python-builder"].base == "base-system"
    assert stages["torch"].base == "python-builder"
    assert stages["comfyui-builder"].base == "torch"
    assert stages["dashboard-builder"].base == "python-builder"
    assert stages["runtime"].base == "base-system"
    assert stages["dev"].base == "runtime"
    # the source stages are plain trees (`make image-check` replaces them with local folders)
    assert stages["comfyui-source"].base == stages["custom-nodes-source"].base == "scratch"
    builder = [copy_sources(c) for c in stages["comfyui-builder"].all("COPY")]
    assert ("comfyui-source", ["/"]) in builder and ("custom-nodes-source", ["/"]) in builder
    copied = [copy_sources(c) for c in stages["runtime"].all("COPY")]
    from_stages = [(stage, tuple(src)) for stage, src in copied if stage]
    assert from_stages == [
        ("torch", ("/app/comfyui",)),  # first: torch and the CUDA libraries, one shared layer
        ("comfyui-builder", ("/out/comfyui/",)),  # then only what the variant adds
        ("dashboard-builder", ("/app/dashboard/venv",)),
    ]
    # runtime has no build tools and no second Python environment
    runtime_text = " ".join(i.args for i in stages["runtime"].instructions)
    assert "pip install" not in runtime_text and "build-essential" not in runtime_text


def test_the_torch_layer_is_the_same_for_every_variant(dockerfile: Dockerfile) -> None:
    """Nothing variant-specific reaches the torch stage or the runtime before its torch COPY."""
    torch = dockerfile.stages["torch"]
    assert "VARIANT" not in " ".join(i.args for i in torch.instructions)
    assert "COPY" not in [i.cmd for i in torch.instructions]
    runtime = dockerfile.stages["runtime"].instructions
    assert runtime[0].cmd == "COPY" and "--from=torch " in runtime[0].args
    for stage in ("base-system", "python-builder"):
        assert "VARIANT" not in " ".join(i.args for i in dockerfile.stages[stage].instructions)
    builder = " ".join(i.args for i in dockerfile.stages["comfyui-builder"].instructions)
    # the delta is taken against the torch stage itself; later installs may not replace its packages
    assert "from=torch,source=/app/comfyui" in builder and "layer-delta.py" in builder
    assert "/app/comfyui/torch-layer.txt /app/comfyui/constraints.txt" in builder


def test_two_venvs_torch_only_in_comfyuis(dockerfile: Dockerfile) -> None:
    torch = " ".join(i.args for i in dockerfile.stages["torch"].instructions)
    dash = " ".join(i.args for i in dockerfile.stages["dashboard-builder"].instructions)
    assert "uv venv --seed /app/comfyui/venv" in torch
    assert '--index-url "${TORCH_INDEX}"' in torch and "torch==${TORCH_VERSION}" in torch
    assert "UV_PROJECT_ENVIRONMENT=/app/dashboard/venv" in dash
    assert "torch" not in dash.replace("torch must not be", "").replace('import torch"', "")
    assert "uv sync --frozen --no-dev --no-install-project" in dash  # dependencies before code


def test_what_the_trial_build_found_stays_fixed(dockerfile: Dockerfile) -> None:
    text = (DOCKER / "Dockerfile").read_text()
    builder = " ".join(i.args for i in dockerfile.stages["comfyui-builder"].instructions)
    base = " ".join(i.args for i in dockerfile.stages["base-system"].instructions)
    # bytecode that ComfyUI-Manager's updates refresh
    assert "unchecked-hash" not in text and "--invalidation-mode timestamp" in builder
    # Triton builds a launcher at first use: a C compiler and Python's headers in the runtime
    assert all(pkg in base.split() for pkg in ("gcc", "libc6-dev", "python3.11-dev"))
    # the container toolkit must not refuse an older driver before our preflight explains it
    code = "\n".join(i.cmd + " " + i.args for st in dockerfile.stages.values() for i in st.instructions)
    assert "NVIDIA_REQUIRE_CUDA" not in code and "nvidia/cuda" not in text
    assert "NVIDIA_VISIBLE_DEVICES=all" in base and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in base
    # ComfyUI 0.33's manager is a pip package; every node imports, or the build fails
    assert "/app/comfyui/ComfyUI/manager_requirements.txt" in builder
    assert "check-node-imports.sh" in builder
    # exactly one OpenCV
    assert "opencv-shims.py" in builder
    # no anonymous volume left behind by a run without -v
    assert not dockerfile.stages["runtime"].all("VOLUME")


def test_runtime_contract(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stages["runtime"]
    (health,) = runtime.all("HEALTHCHECK")
    assert health.args.endswith('CMD ["comfyui-docker", "health"]')
    (expose,) = runtime.all("EXPOSE")
    assert expose.args.split() == ["8080", "3000", "22"]
    (entry,) = runtime.all("ENTRYPOINT")
    assert entry.args == '["/usr/bin/tini", "--", "/usr/local/bin/startup.sh"]'
    env: dict[str, str] = {}
    for ins in runtime.all("ENV"):
        for pair in re.findall(r"(\w+)=(\S+)", ins.args):
            env[pair[0]] = pair[1]
    assert env["ENABLE_NGINX"] == "true"
    assert env["WORKSPACE_ROOT"] == "/workspace"
    assert env["COMFYUI_ROOT"] == "/app/comfyui/ComfyUI"
    assert env["COMFYUI_PYTHON"] == "/app/comfyui/venv/bin/python"
    assert env["PATH"].startswith("/app/dashboard/venv/bin:")
    # over SSH the image's ENV is not set: the command is also where every login shell looks
    runs = " ".join(i.args for i in runtime.all("RUN"))
    assert "ln -s /app/dashboard/venv/bin/comfyui-docker /usr/local/bin/comfyui-docker" in runs
    # the image's environment is valid for the runtime's settings, ports match EXPOSE
    settings = Settings.from_env({k: v for k, v in env.items() if k != "PATH" and "$" not in v})
    assert settings.enable_nginx
    assert {str(settings.dashboard_port), str(settings.comfyui_port)} <= set(expose.args.split())
    labels = " ".join(i.args for i in runtime.all("LABEL"))
    for key in ("title", "description", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    # labels last: after the entry point, only the ARGs they use and the labels
    cmds = [i.cmd for i in runtime.instructions]
    assert set(cmds[cmds.index("ENTRYPOINT") + 1 :]) == {"ARG", "LABEL"}


def test_no_secrets_no_curl_pipe_sh(dockerfile: Dockerfile) -> None:
    text = (DOCKER / "Dockerfile").read_text()
    code = "\n".join(i.cmd + " " + i.args for s in dockerfile.stages.values() for i in s.instructions)
    assert not re.search(r"curl[^\n|]*\|\s*(ba)?sh", code)
    assert not re.search(r"^ADD\s+https?://", text, re.MULTILINE)
    assert 'pip install "uv==${UV_VERSION}"' in text
    assert text.splitlines()[0] == "# syntax=docker/dockerfile:1"
    secretish = re.compile(r"(TOKEN|PASSWORD|SECRET|PUBLIC_KEY|API_KEY)", re.IGNORECASE)
    for stage in dockerfile.stages.values():
        for ins in stage.all("ENV") + stage.all("ARG"):
            assert not secretish.search(ins.args), f"line {ins.line}: {ins.cmd} {ins.args}"
    assert "rm -f /etc/ssh/ssh_host_*" in text  # every container makes its own host keys


def test_cache_mounts_for_apt_and_uv(dockerfile: Dockerfile) -> None:
    runs = [i.args for s in dockerfile.stages.values() for i in s.all("RUN")]
    for run in runs:
        if "apt-get install" in run:
            assert "--mount=type=cache,target=/var/cache/apt,sharing=locked" in run
            # apt-get update deletes the lock file buildah 1.28 keeps inside a locked mount, and the
            # next RUN locking it hangs (Debian 12's buildah, which `make image-check` uses)
            assert "target=/var/lib/apt/lists" not in run
            assert "rm -rf /var/lib/apt/lists/*" in run  # fetched again, never kept in a layer
        if re.search(r"\buv (pip install|sync)", run):
            assert "--mount=type=cache,target=/root/.cache/uv" in run


def test_startup_script_hands_over_by_mode(tmp_path: Path) -> None:
    """startup.sh execs `comfyui-docker start` (a pod) or `serverless` (MODE=serverless) with the
    container's arguments; another MODE stops with what to write instead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "comfyui-docker"
    fake.write_text('#!/bin/sh\necho "comfyui-docker $*"\n')
    fake.chmod(0o755)

    def run(mode: str | None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **({"MODE": mode} if mode is not None else {})}
        script = str(DOCKER / "startup.sh")
        return subprocess.run([script, "--rp_serve_api", "x y"], env=env, capture_output=True, text=True)

    assert run(None).stdout == "comfyui-docker start --rp_serve_api x y\n"
    assert run("").stdout == "comfyui-docker start --rp_serve_api x y\n"
    assert run("pod").stdout == "comfyui-docker start --rp_serve_api x y\n"
    assert run("serverless").stdout == "comfyui-docker serverless --rp_serve_api x y\n"
    bad = run("worker")
    assert (
        bad.returncode == 2 and "MODE=worker is not known: use pod (the default) or serverless" in bad.stderr
    )
    assert (DOCKER / "startup.sh").stat().st_mode & 0o111


def test_the_dashboards_venv_has_the_runpod_sdk(dockerfile: Dockerfile) -> None:
    """MODE=serverless needs the `serverless` extra in both uv syncs (dependencies, then project)."""
    syncs = [i.args for i in dockerfile.stages["dashboard-builder"].all("RUN") if "uv sync" in i.args]
    assert len(syncs) == 2 and all("--extra serverless" in run for run in syncs)
    assert "import comfyui_docker.web.app, comfyui_docker.cli, runpod.serverless" in syncs[1]


# ---- custom node lists ----------------------------------------------------------------------
LINE = re.compile(r"^(https://github\.com/[\w.-]+/[\w.-]+) ([0-9a-f]{40})(?: (\S+))?$")


def node_list(name: str) -> list[tuple[str, str]]:
    out = []
    for raw in (NODE_LISTS / f"{name}.txt").read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        m = LINE.match(raw)
        assert m, f"{name}.txt: bad line {raw!r} (want: URL COMMIT [REQUIREMENTS_FILE])"
        out.append((m.group(1).rsplit("/", 1)[1], m.group(2)))
    return out


def test_node_lists_are_pinned_and_unique(bake: dict) -> None:
    names = [n for lst in ("minimal", "standard", "full") for n, _ in node_list(lst)]
    assert len(names) == len(set(names)), "a node is listed twice"
    # ComfyUI-Manager comes from ComfyUI's manager_requirements.txt (pip), not a clone
    assert node_list("minimal") == []
    standard = {n for n, _ in node_list("standard")}
    assert {
        "ComfyUI-Inspire-Pack",
        "rgthree-comfy",
        "ComfyUI-VideoHelperSuite",
        "ComfyUI-KJNodes",
    } <= standard
    assert len(node_list("full")) >= 8


def test_installer_knows_every_bake_variant(bake: dict) -> None:
    script = (DOCKER / "install-custom-nodes.sh").read_text()
    variants = {t["args"]["VARIANT"] for n, t in bake["target"].items() if not n.startswith("_")}
    assert variants == set(VARIANTS) - {"dev"}  # dev is built as full
    for variant in variants:
        assert re.search(rf"^\s*(\w+ \| )?{variant}( \| \w+)?\)", script, re.MULTILINE), variant
    for lst in re.findall(r"names=\(([^)]*)\)", script):
        for name in lst.split():
            assert (NODE_LISTS / f"{name}.txt").is_file()


# ---- .dockerignore --------------------------------------------------------------------------
def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = "".join(
            ".*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            for part in re.split(r"(\*\*)", pattern)
        )
        rules.append((negate, re.compile(rx.replace(".*/", "(.*/)?") + "$")))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    state = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            state = not negate
    return state


def test_dockerignore_lets_in_what_the_dockerfile_copies(dockerfile: Dockerfile) -> None:
    rules = ignore_rules()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for stage in dockerfile.stages.values():
        for ins in stage.all("COPY"):
            src_stage, sources = copy_sources(ins)
            if src_stage:
                continue
            for src in sources:
                src = src.rstrip("/")
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                files = [f for f in tracked if f == src or f.startswith(src + "/")] or [src]
                assert any(not excluded(f, rules) for f in files), f"COPY {src} is excluded by .dockerignore"
    for path in ("src/comfyui_docker/__init__.py", "uv.lock", "docker/custom_nodes/minimal.txt"):
        assert not excluded(path, rules), path
    for path in (".venv/bin/python", "workspace/models/x", ".git/config", "frontend/node_modules/x/y.js",
                 "src/comfyui_docker/web/static/app.css", "src/comfyui_docker/web/static/vendor/htmx.min.js",
                 "src/comfyui_docker/__pycache__/x.pyc", "tests/conftest.py", ".gitignore"):  # fmt: skip
        assert excluded(path, rules), path


# ---- linters ---------------------------------------------------------------------------------
def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in .venv (uv sync installs it)")
    return str(path)


def test_hadolint_is_clean() -> None:
    proc = subprocess.run(
        [tool("hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    for n, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            assert lines[n - 1].startswith("#") and not lines[n - 1].startswith("# hadolint"), (
                f"line {n + 1}: an ignored hadolint rule needs the reason on the comment line above"
            )


def test_shellcheck_is_clean() -> None:
    scripts = sorted({*REPO.glob("docker/*.sh"), *REPO.glob("scripts/*.sh"), REPO / ".ci" / "run"})
    scripts = [s for s in scripts if s.exists()]
    assert DOCKER / "startup.sh" in scripts and DOCKER / "install-custom-nodes.sh" in scripts
    proc = subprocess.run(
        [tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
