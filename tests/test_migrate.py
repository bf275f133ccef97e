from __future__ import annotations

from pathlib import Path

from comfyui_docker.migrate import migrate


def make_old(tmp_path: Path) -> Path:
    old = tmp_path / "ComfyUI" / "models"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "a.safetensors").write_bytes(b"A" * 100)
    (old / "lora").mkdir()
    (old / "lora" / "style.safetensors").write_bytes(b"L")
    (old / "clip").mkdir()
    (old / "clip" / "t5.safetensors").write_bytes(b"T")
    (old / "checkpoints" / "sub").mkdir()
    (old / "checkpoints" / "sub" / "b.ckpt").write_bytes(b"B")
    (old / "README.txt").write_text("top-level file")
    return old


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    old = make_old(tmp_path)
    models = tmp_path / "ws" / "models"
    report = migrate(old, models, dry_run=True)
    assert len(report.moved) == 4
    assert (old / "checkpoints" / "a.safetensors").exists()
    assert not models.exists()


def test_moves_into_canonical_folders(tmp_path: Path) -> None:
    old = make_old(tmp_path)
    models = tmp_path / "ws" / "models"
    models.mkdir(parents=True)
    report = migrate(old, models)
    assert report.ok
    assert (models / "checkpoints" / "a.safetensors").read_bytes() == b"A" * 100
    assert (models / "loras" / "style.safetensors").exists(), "lora -> loras"
    assert (models / "text_encoders" / "t5.safetensors").exists(), "clip -> text_encoders"
    assert (models / "checkpoints" / "sub" / "b.ckpt").exists()
    assert not (old / "checkpoints" / "a.safetensors").exists()
    assert [p.name for p, _ in report.skipped] == ["README.txt"]


def test_never_overwrites_a_different_file(tmp_path: Path) -> None:
    old = make_old(tmp_path)
    models = tmp_path / "ws" / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "a.safetensors").write_bytes(b"different")
    (models / "loras").mkdir()
    (models / "loras" / "style.safetensors").write_bytes(b"L")
    report = migrate(old, models)
    assert not report.ok
    assert [src.name for src, _ in report.conflicts] == ["a.safetensors"]
    assert (models / "checkpoints" / "a.safetensors").read_bytes() == b"different"
    assert (old / "checkpoints" / "a.safetensors").exists(), "the source is kept on conflict"
    assert [src.name for src, _ in report.duplicates] == ["style.safetensors"]


def test_copy_path_across_filesystems(tmp_path: Path, monkeypatch) -> None:
    import comfyui_docker.migrate as mod

    old = make_old(tmp_path)
    models = tmp_path / "ws" / "models"
    models.mkdir(parents=True)
    monkeypatch.setattr(mod, "_same_filesystem", lambda src, dst: False)
    report = migrate(old, models)
    assert len(report.copied) == 4 and not report.moved
    assert (models / "checkpoints" / "a.safetensors").read_bytes() == b"A" * 100
    assert not list(models.rglob("*.part"))
    assert not (old / "checkpoints" / "a.safetensors").exists()
