"""The one list of saved workflows: ComfyUI's `user/default/workflows`, subfolders included; the
old `/workspace/workflows` moved there once; `run NAME` finds a saved workflow by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from comfy_samples import OBJECT_INFO
from comfyui_docker.cli import main
from comfyui_docker.errors import InvalidInput, NotFound
from comfyui_docker.workflows.saved import SavedWorkflows, check_name, move_legacy
from comfyui_docker.workspace import Workspace

API = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}}}


def saved(tmp_path: Path) -> SavedWorkflows:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    return SavedWorkflows(ws.workflows, ws.root)


def test_workspace_workflows_are_comfyuis_user_workflows(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    assert ws.workflows == ws.root / "user" / "default" / "workflows" and ws.workflows.is_dir()
    assert not ws.legacy_workflows.exists()  # the old folder is not created any more


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("flow", "flow.json"),
        ("sub/deep/flow.json", "sub/deep/flow.json"),
        ("my flow (2).JSON", "my flow (2).JSON"),
    ],
)
def test_good_names(name: str, clean: str) -> None:
    assert check_name(name) == clean


@pytest.mark.parametrize(
    "name",
    ["../x.json", "sub/../../x.json", "/etc/x.json", ".hidden.json", "sub/.git/x.json", "a//b.json", "a\\b"],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


def test_list_includes_subfolders_and_skips_the_rest(tmp_path: Path) -> None:
    store = saved(tmp_path)
    (store.folder / "a.json").write_text("{}")
    (store.folder / "people" / "kids").mkdir(parents=True)
    (store.folder / "people" / "portrait.json").write_text("{}")
    (store.folder / "people" / "kids" / "b.json").write_text("{}")
    (store.folder / "notes.txt").write_text("x")
    (store.folder / ".index.json").write_text("{}")
    (store.folder / ".hidden").mkdir()
    (store.folder / ".hidden" / "c.json").write_text("{}")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, store.folder / "link.json")
    assert [w["name"] for w in store.list()] == ["a.json", "people/kids/b.json", "people/portrait.json"]
    with pytest.raises(InvalidInput, match="outside the volume"):
        store.path("link.json")


def test_find_by_name_in_subfolders(tmp_path: Path) -> None:
    store = saved(tmp_path)
    (store.folder / "people").mkdir()
    (store.folder / "people" / "portrait.json").write_text("{}")
    (store.folder / "a").mkdir()
    (store.folder / "b").mkdir()
    (store.folder / "a" / "twin.json").write_text("{}")
    (store.folder / "b" / "twin.json").write_text("{}")
    assert store.find("portrait") == store.folder / "people" / "portrait.json"
    assert store.find("people/portrait.json") == store.folder / "people" / "portrait.json"
    assert store.find("nothing") is None and store.find("../etc/passwd") is None
    with pytest.raises(InvalidInput, match=r"a/twin\.json, b/twin\.json"):
        store.find("twin")
    with pytest.raises(NotFound):
        store.path("people/nothing.json")


def test_the_old_folder_is_moved_once_and_a_clash_keeps_both(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    (ws.workflows / "same.json").write_text('{"from": "comfyui"}')
    (ws.workflows / "sub").mkdir()
    old = ws.legacy_workflows
    (old / "sub").mkdir(parents=True)
    (old / "same.json").write_text('{"from": "dashboard"}')
    (old / "only-old.json").write_text("{}")
    (old / "sub" / "x.json").write_text("{}")
    inode = (old / "only-old.json").stat().st_ino
    report = ws.init()
    assert not old.exists()
    assert json.loads((ws.workflows / "same.json").read_text()) == {"from": "comfyui"}
    assert json.loads((ws.workflows / "same (1).json").read_text()) == {"from": "dashboard"}
    assert (ws.workflows / "only-old.json").stat().st_ino == inode  # moved, not copied
    assert (ws.workflows / "sub (1)" / "x.json").is_file()
    assert len(report.moved_workflows) == 3
    assert ws.init().moved_workflows == []  # once: nothing left to move
    assert move_legacy(tmp_path / "nothing", ws.workflows) == []


def test_convert_finds_a_saved_workflow_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    monkeypatch.setenv("WORKSPACE_ROOT", str(ws.root))
    monkeypatch.chdir(tmp_path)
    (ws.workflows / "people").mkdir()
    (ws.workflows / "people" / "portrait.json").write_text(json.dumps(API))
    assert main(["convert", "portrait", "--object-info", str(OBJECT_INFO)]) == 0
    assert json.loads(capsys.readouterr().out) == API
    assert main(["convert", "people/portrait", "--object-info", str(OBJECT_INFO)]) == 0
    capsys.readouterr()
    assert main(["convert", "absent", "--object-info", str(OBJECT_INFO)]) == 1
    assert "name of a saved workflow" in capsys.readouterr().err


def test_legacy_folder_moved_away_by_another_runtime_meanwhile(tmp_path: Path) -> None:
    """Two runtimes on one volume: the other one moved everything and removed the old folder
    between our look at it and our listing of it."""
    old = tmp_path / "workflows"
    old.mkdir()
    (old / "a.json").write_text("{}")
    new = tmp_path / "user" / "default" / "workflows"

    class Raced(type(tmp_path)):  # type: ignore[misc]
        def iterdir(self):  # type: ignore[no-untyped-def]
            if self == old:  # the other runtime, just now
                move_legacy(Path(old), new)
            return super().iterdir()

    assert move_legacy(Raced(old), new) == []
    assert (new / "a.json").is_file() and not old.exists()
