from __future__ import annotations

import os
from pathlib import Path

import pytest

from comfyui_docker.errors import WorkspaceError
from comfyui_docker.model_paths import MODEL_FOLDERS
from comfyui_docker.workspace import TOP_FOLDERS, Workspace


def test_init_creates_layout_and_is_idempotent(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    report = ws.init()
    assert report.ok or report.problems  # low disk is a warning, not a failure
    for name in TOP_FOLDERS:
        assert (ws.root / name).is_dir()
    for folder in MODEL_FOLDERS:
        assert ws.model_folder(folder).is_dir()
    assert ws.generated_yaml.is_file()
    keep = ws.model_folder("loras") / "mine.safetensors"
    keep.write_bytes(b"user data")
    user_yaml = ws.user_yaml
    user_yaml.write_text("mine:\n  loras: /data/loras\n")
    mtime = ws.generated_yaml.stat().st_mtime_ns
    again = ws.init()
    assert again.created == []
    assert keep.read_bytes() == b"user data"
    assert user_yaml.read_text() == "mine:\n  loras: /data/loras\n"
    assert ws.generated_yaml.stat().st_mtime_ns == mtime, "unchanged yaml is not rewritten"


def test_generated_yaml_is_rewritten_when_tampered(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    ws.generated_yaml.write_text("broken: [")
    ws.init()
    assert "comfyui_docker:" in ws.generated_yaml.read_text()
    assert not list(ws.config.glob(".*.tmp")), "no temp file left behind"


def test_file_where_a_folder_must_be(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "models").write_text("oops")
    with pytest.raises(WorkspaceError) as err:
        Workspace(root).ensure()
    assert "models" in str(err.value) and err.value.hint
    assert (root / "models").read_text() == "oops", "the user's file is untouched"


def test_workspace_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "ws").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file"):
        Workspace(tmp_path / "ws").ensure()


def test_root_made_by_another_pod_at_the_same_moment(tmp_path: Path) -> None:
    """Two pods sharing a volume start together: the root appears between our look and our mkdir."""
    target = tmp_path / "ws"

    class Raced(type(tmp_path)):  # type: ignore[misc]
        def exists(self, *, follow_symlinks: bool = True) -> bool:
            if self == target:
                os.makedirs(self, exist_ok=True)  # the other pod, just now
                return False
            return super().exists()

    report = Workspace(Raced(target)).ensure()
    assert target.is_dir() and (target / "models").is_dir()
    assert Path(target) not in report.created  # ours made what was missing under it


def test_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace(tmp_path / "no" / "such" / "ws").ensure()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_read_only_volume(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    ws.config.chmod(0o500)
    try:
        with pytest.raises(WorkspaceError, match="not writable"):
            ws.ensure()
    finally:
        ws.config.chmod(0o700)


def test_read_only_volume_as_root(tmp_path: Path) -> None:
    """Root ignores permission bits, so simulate a read-only mount with a failing probe path."""
    ws = Workspace(tmp_path / "ws")
    ws.init()
    ws.config.rename(tmp_path / "moved")
    (ws.root / "config").write_text("not a folder")
    with pytest.raises(WorkspaceError):
        ws.ensure()


def test_disk_usage(tmp_path: Path) -> None:
    usage = Workspace(tmp_path).disk_usage()
    assert usage.total > 0 and 0 <= usage.free <= usage.total
    assert 0.0 <= usage.percent <= 100.0


def test_ensure_does_not_walk_existing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    for i in range(50):
        (ws.model_folder("checkpoints") / f"m{i}.safetensors").write_bytes(b"")

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("ensure() must not walk the volume")

    monkeypatch.setattr(os, "walk", boom)
    monkeypatch.setattr(os, "scandir", boom)
    monkeypatch.setattr(Path, "rglob", boom)
    monkeypatch.setattr(Path, "iterdir", boom)
    ws.init()


def test_runtimes_starting_together_on_a_new_volume(tmp_path: Path) -> None:
    """Two pods on one new network volume: both create the layout at once, neither fails."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(10):
        root = tmp_path / f"ws{round_}"
        legacy = root / "workflows"  # the old folder, moved into ComfyUI's own at the first start
        if round_ % 2:
            legacy.mkdir(parents=True)
            for i in range(5):
                (legacy / f"w{i}.json").write_text("{}")
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _, at=root: Workspace(at).init(), range(6)))
        assert len(results) == 6 and (root / "models").is_dir()
        moved = sorted(p.name for p in Workspace(root).workflows.iterdir())
        assert moved == ([f"w{i}.json" for i in range(5)] if round_ % 2 else [])
