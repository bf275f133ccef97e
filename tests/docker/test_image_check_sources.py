"""The image check's source folders: refused unless at the pins, with what to provide (exit 2)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from image_helpers import REPO
from test_install_custom_nodes import git

sys.path.insert(0, str(REPO / "scripts"))

from image_check import sources


def comfyui_folder(root: Path, version: str) -> Path:
    root.mkdir()
    (root / "main.py").write_text("")
    (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    return root


def test_a_folder_without_git_is_checked_by_its_version(tmp_path: Path) -> None:
    version, _ = sources.comfyui_pin()
    good = comfyui_folder(tmp_path / "good", version)
    assert sources.check_comfyui(good) == (None, [])
    with pytest.raises(sources.SourceError, match=re.escape(f"is not ComfyUI {version}")):
        sources.check_comfyui(comfyui_folder(tmp_path / "old", "0.3.10"))
    with pytest.raises(sources.SourceError, match="has no main"):
        sources.check_comfyui(tmp_path)


def test_a_folder_without_git_is_staged_without_run_time_folders_at_its_top_only(tmp_path: Path) -> None:
    version, _ = sources.comfyui_pin()
    src = comfyui_folder(tmp_path / "ComfyUI", version)
    for rel in ("output/a.png", "input/b.png", "user/c.json", "temp/d", "__pycache__/main.pyc",
                "comfy_api/input/__init__.py", "comfy_api/__pycache__/x.pyc", "app/user/e.py"):  # fmt: skip
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    assert sources.stage(src, tmp_path / "stage", None) is True
    staged = sorted(
        str(p.relative_to(tmp_path / "stage")) for p in (tmp_path / "stage").rglob("*") if p.is_file()
    )
    assert staged == ["app/user/e.py", "comfy_api/input/__init__.py", "comfyui_version.py", "main.py"]


def test_a_checkout_at_another_commit_is_refused(tmp_path: Path) -> None:
    version, commit = sources.comfyui_pin()
    repo = comfyui_folder(tmp_path / "ComfyUI", version)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "x")
    with pytest.raises(sources.SourceError, match=re.escape(f"the pin is {commit}")):
        sources.check_comfyui(repo)


def test_changed_files_refused_missing_files_reported_and_staged_without_them(tmp_path: Path) -> None:
    repo = tmp_path / "Node"
    repo.mkdir()
    (repo / "a.py").write_text("a")
    (repo / "big.json").write_text("{}")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "x")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "big.json").unlink()  # a snapshot without a large file
    (repo / "untracked.log").write_text("not in the image")
    tracked, missing = sources.checkout_state(repo, head, "node")
    assert missing == ["big.json"] and sorted(tracked) == ["a.py", "big.json"]
    assert sources.stage(repo, tmp_path / "stage", tracked) is True
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == [".git", "a.py"]
    assert sources.stage(repo, tmp_path / "stage", tracked) is False  # same state: not copied again
    (repo / "a.py").write_text("changed")
    with pytest.raises(sources.SourceError, match=re.escape("changed tracked files: a.py")):
        sources.checkout_state(repo, head, "node")


def test_nodes_missing_are_listed_with_url_and_commit(tmp_path: Path) -> None:
    nodes = sources.variant_nodes("standard")
    assert nodes, "standard has custom nodes"
    with pytest.raises(sources.SourceError) as info:
        sources.stage_nodes("standard", None, tmp_path)
    for node in nodes:
        assert f"{node.name}" in str(info.value) and f"{node.url} @ {node.commit}" in str(info.value)
    staged = sources.stage_nodes("minimal", None, tmp_path)  # minimal has none: nothing to provide
    assert staged.path.is_dir() and not any(staged.path.iterdir())


def test_without_comfyui_src_the_check_says_what_to_provide_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "image_check", "--work-dir", str(tmp_path)],
        cwd=REPO / "scripts", capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 2
    # either a tool to install, or the ComfyUI checkout to give, each with how
    assert "COMFYUI_SRC=DIR" in proc.stderr or "missing tools" in proc.stderr, proc.stderr
    if "COMFYUI_SRC=DIR" in proc.stderr:
        assert sources.comfyui_pin()[1] in proc.stderr
