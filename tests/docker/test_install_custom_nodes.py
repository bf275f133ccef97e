"""docker/install-custom-nodes.sh for real: git repos on disk, wheels made here, uv offline.

What the image build relies on: each node fetched at exactly its pinned commit (or, for
`make image-check`, a local checkout refused unless it is at that commit), all requirements
resolved together (so two nodes cannot silently undo each other), and a conflict failing the
build with uv's explanation instead of breaking ComfyUI at run time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from image_helpers import DOCKER

SCRIPT = DOCKER / "install-custom-nodes.sh"


def wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal valid pure-Python wheel."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\n"
        + f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        + "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as zf:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            zf.writestr(path, data)
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def node_repo(base: Path, name: str, requirements: str, *, later: str | None = None) -> tuple[str, str]:
    """A node's git repo; returns (file:// url, pinned commit). `later` adds a commit after the pin."""
    repo = base / "remotes" / name
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")  # as GitHub does
    (repo / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (repo / "requirements.txt").write_text(requirements)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pinned")
    pinned = git(repo, "rev-parse", "HEAD")
    if later is not None:
        (repo / "requirements.txt").write_text(later)
        git(repo, "commit", "-q", "-am", "after the pin")
    return f"file://{repo}", pinned


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv on PATH (make install puts it there)")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0", "3.0"):
        wheel(wheels, "cdt_a", version)
    wheel(wheels, "cdt_b", "1.0", ("cdt_a<3",))
    wheel(wheels, "cdt_c", "1.0")
    wheel(wheels, "cdt_torch", "2.9.1")
    wheel(wheels, "cdt_torch", "3.0.0")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                   env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})  # fmt: skip
    return {
        **os.environ,
        "PATH": f"{Path(uv).parent}:{os.environ['PATH']}",
        "UV_OFFLINE": "1",
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "VENV_PY": str(venv / "bin" / "python"),
    }


def lists(tmp_path: Path, **content: list[str]) -> Path:
    folder = tmp_path / "lists"
    folder.mkdir(exist_ok=True)
    for name in ("minimal", "standard", "full"):
        (folder / f"{name}.txt").write_text("# test list\n" + "\n".join(content.get(name, [])) + "\n")
    return folder


def script(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True, timeout=120
    )


def install(
    env: dict[str, str], tmp_path: Path, variant: str, folder: Path, sources: Path, *extra: Path
) -> subprocess.CompletedProcess[str]:
    layer_pins = tmp_path / "torch-layer.txt"
    layer_pins.write_text("cdt_torch==2.9.1\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("cdt_torch==2.9.1\n")
    dest = tmp_path / "custom_nodes"
    return script(
        env, "install", variant, folder, dest, sources, env["VENV_PY"], layer_pins, constraints,
        env["UV_FIND_LINKS"], *extra,
    )  # fmt: skip


def run(
    env: dict[str, str], tmp_path: Path, variant: str, folder: Path, *extra: Path
) -> subprocess.CompletedProcess[str]:
    """As the published build does: fetch at the pins, then install from what was fetched."""
    sources = tmp_path / "sources"
    fetched = script(env, "fetch", variant, folder, sources)
    if fetched.returncode != 0:
        return fetched
    return install(env, tmp_path, variant, folder, sources, *extra)


def installed(env: dict[str, str], name: str) -> str | None:
    code = (
        "import importlib.metadata as m\n"
        f"try: print(m.version({name!r}))\n"
        "except m.PackageNotFoundError: print('')"
    )
    out = subprocess.run(
        [env["VENV_PY"], "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out or None


def test_nodes_at_their_pins_with_requirements_resolved_together(env: dict[str, str], tmp_path: Path) -> None:
    manager = node_repo(tmp_path, "SomeNode", "")
    a = node_repo(tmp_path, "NodeA", "cdt_a>=1\n", later="cdt_a==1.0\n")
    b = node_repo(tmp_path, "NodeB", "cdt_b\n")
    big = node_repo(tmp_path, "NodeFull", "cdt_a\n")
    comfy_reqs = tmp_path / "comfy-requirements.txt"
    comfy_reqs.write_text("cdt_c\ncdt_torch\n")
    folder = lists(
        tmp_path, minimal=[" ".join(manager)], standard=[" ".join(a), " ".join(b)], full=[" ".join(big)]
    )
    proc = run(env, tmp_path, "standard", folder, comfy_reqs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dest = tmp_path / "custom_nodes"
    assert sorted(p.name for p in dest.iterdir()) == ["NodeA", "NodeB", "SomeNode"]  # not full's
    assert git(dest / "NodeA", "rev-parse", "HEAD") == a[1]  # the pin, not the newer commit
    assert (dest / "NodeA" / "requirements.txt").read_text() == "cdt_a>=1\n"
    # one resolution: NodeA alone would take cdt_a 3.0, NodeB needs <3, so 2.0 satisfies both
    assert installed(env, "cdt_a") == "2.0"
    assert installed(env, "cdt_c") == "1.0"
    assert installed(env, "cdt_torch") == "2.9.1"  # held by the constraints (the torch pins)


def test_a_conflict_fails_the_build_and_installs_nothing(env: dict[str, str], tmp_path: Path) -> None:
    one = node_repo(tmp_path, "NodeOne", "cdt_a==1.0\n")
    three = node_repo(tmp_path, "NodeThree", "cdt_a==3.0\n")
    folder = lists(tmp_path, minimal=[" ".join(one)], standard=[" ".join(three)])
    proc = run(env, tmp_path, "full", folder)
    assert proc.returncode != 0
    assert "cdt-a" in (proc.stdout + proc.stderr).lower()
    assert installed(env, "cdt_a") is None


def test_a_node_asking_for_another_torch_fails(env: dict[str, str], tmp_path: Path) -> None:
    greedy = node_repo(tmp_path, "Greedy", "cdt_torch>=3\n")
    proc = run(env, tmp_path, "minimal", lists(tmp_path, minimal=[" ".join(greedy)]))
    assert proc.returncode != 0
    assert installed(env, "cdt_torch") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("https://github.com/x/NodeX abc123", "full 40-character commit"),
        ("https://github.com/x/NodeX", "full 40-character commit"),
    ],
)
def test_unpinned_lines_are_refused(env: dict[str, str], tmp_path: Path, line: str, message: str) -> None:
    proc = run(env, tmp_path, "minimal", lists(tmp_path, minimal=[line]))
    assert proc.returncode == 1
    assert message in proc.stderr


def test_unknown_variant(env: dict[str, str], tmp_path: Path) -> None:
    proc = run(env, tmp_path, "huge", lists(tmp_path))
    assert proc.returncode == 2
    assert "unknown VARIANT 'huge'" in proc.stderr
    # dev is built as full (its layers are full's): the installer has no variant of its own for it
    assert script(env, "fetch", "dev", lists(tmp_path), tmp_path / "s").returncode == 2


def test_a_local_checkout_must_be_at_the_pin(env: dict[str, str], tmp_path: Path) -> None:
    """`make image-check` gives local checkouts: one at another commit is refused by the build."""
    url, pinned = node_repo(tmp_path, "NodeA", "cdt_a\n", later="cdt_a==1.0\n")
    sources = tmp_path / "local"
    sources.mkdir()
    git(sources, "clone", "-q", url, "NodeA")  # at the newer commit
    proc = install(env, tmp_path, "minimal", lists(tmp_path, minimal=[f"{url} {pinned}"]), sources)
    assert proc.returncode == 1
    assert f"the list pins {pinned}" in proc.stderr
    git(sources / "NodeA", "checkout", "-q", pinned)
    proc = install(env, tmp_path, "minimal", lists(tmp_path, minimal=[f"{url} {pinned}"]), sources)
    assert proc.returncode == 0, proc.stderr
    assert installed(env, "cdt_a") == "3.0"


def test_a_missing_local_checkout_is_named(env: dict[str, str], tmp_path: Path) -> None:
    url, pinned = node_repo(tmp_path, "NodeA", "")
    (tmp_path / "empty").mkdir()
    proc = install(env, tmp_path, "minimal", lists(tmp_path, minimal=[f"{url} {pinned}"]), tmp_path / "empty")
    assert proc.returncode == 1
    assert "NodeA: no git checkout" in proc.stderr and pinned in proc.stderr


def test_a_git_url_requirement_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    """Installed from a branch tip at every build: neither pinned nor reproducible."""
    node = node_repo(tmp_path, "NodeGit", "cdt_a\ngit+https://example.invalid/x.git\n")
    proc = run(env, tmp_path, "minimal", lists(tmp_path, minimal=[" ".join(node)]))
    assert proc.returncode == 1
    assert "installs from a git URL" in proc.stderr
    assert installed(env, "cdt_a") is None
