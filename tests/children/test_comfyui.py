"""ComfyUI's command line and environment as the supervisor builds them (no process started)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from comfyui_docker.children.comfyui import comfyui_args, comfyui_spec
from comfyui_docker.children.comfyui_env import comfyui_environment
from comfyui_docker.instance import Instance, database_path
from comfyui_docker.settings import Settings
from comfyui_docker.supervisor import ProcessSpec
from comfyui_docker.workspace import Workspace


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system temp folder (where the database goes) is this test's own."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def image_like(tmp_path: Path, *, manager: bool = False, constraints: bool = False) -> Settings:
    """A ComfyUI laid out as in the image: app/comfyui/{ComfyUI, venv, constraints.txt}."""
    app = tmp_path / "app" / "comfyui"
    (app / "ComfyUI").mkdir(parents=True)
    (app / "ComfyUI" / "main.py").write_text("")
    (app / "venv" / "bin").mkdir(parents=True)
    (app / "venv" / "bin" / "python").write_text("")
    site = app / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if manager:
        (site / "comfyui_manager").mkdir()
        (site / "comfyui_manager" / "__init__.py").write_text("")
    if constraints:
        (app / "constraints.txt").write_text("torch==2.9.1\n")
    ws = tmp_path / "workspace"
    ws.mkdir()
    return Settings.from_env(
        {
            "WORKSPACE_ROOT": str(ws),
            "COMFYUI_ROOT": str(app / "ComfyUI"),
            "COMFYUI_PYTHON": str(app / "venv" / "bin" / "python"),
            "COMFYUI_INTERNAL_PORT": "18765",
        },
        cwd=tmp_path,
    )


def test_database_goes_to_a_writable_container_local_file(tmp_path: Path) -> None:
    settings = image_like(tmp_path)
    ws = Workspace(settings.workspace_root)
    args = comfyui_args(settings, ws)
    url = args[args.index("--database-url") + 1]
    db = database_path(settings.comfyui_internal_port)
    assert url == f"sqlite:///{db}"
    assert db.is_relative_to(tmp_path / "tmp")  # the container's own disk ...
    assert not db.is_relative_to(settings.workspace_root)  # ... never the shared volume
    assert "18765" in str(db)  # keyed by ComfyUI's port: two runtimes never share one
    comfyui_spec(settings, ws, client=lambda: None)
    with sqlite3.connect(db) as conn:  # the spec made its folder: SQLite can create the file
        conn.execute("create table t (x)")


def test_enable_manager_only_when_its_package_is_in_comfyuis_venv(tmp_path: Path) -> None:
    without = image_like(tmp_path / "a")
    assert "--enable-manager" not in comfyui_args(without, Workspace(without.workspace_root))
    with_manager = image_like(tmp_path / "b", manager=True)
    assert "--enable-manager" in comfyui_args(with_manager, Workspace(with_manager.workspace_root))


def test_environment_puts_comfyuis_venv_first_on_path(tmp_path: Path) -> None:
    settings = image_like(tmp_path)
    venv_bin = str(settings.comfyui_python.parent)
    env = comfyui_environment(settings, {"PATH": f"/app/dashboard/venv/bin:{venv_bin}:/usr/bin", "X": "1"})
    assert env["PATH"].split(":") == [venv_bin, "/app/dashboard/venv/bin", "/usr/bin"]
    assert env["VIRTUAL_ENV"] == str(settings.comfyui_python.parent.parent)
    assert env["X"] == "1"
    assert "PIP_CONSTRAINT" not in env and "UV_CONSTRAINT" not in env  # no file, no constraint


@pytest.mark.parametrize("base_path", [None, ""])
def test_environment_without_a_path(tmp_path: Path, base_path: str | None) -> None:
    settings = image_like(tmp_path)
    base = {} if base_path is None else {"PATH": base_path}
    assert comfyui_environment(settings, base)["PATH"].split(":")[0] == str(settings.comfyui_python.parent)


def test_constraints_apply_to_pip_and_uv(tmp_path: Path) -> None:
    settings = image_like(tmp_path, constraints=True)
    env = comfyui_spec(settings, Workspace(settings.workspace_root), client=lambda: None).env
    assert env is not None
    expected = str(tmp_path / "app" / "comfyui" / "constraints.txt")
    assert env["PIP_CONSTRAINT"] == expected and env["UV_CONSTRAINT"] == expected


def test_a_second_instance_keeps_apart_what_cannot_be_shared(tmp_path: Path) -> None:
    """One ComfyUI per GPU (issue 16): an instance has its own port, GPU, database, temp folder,
    log and service name; the volume's folders are the same for every instance."""
    settings = image_like(tmp_path)
    ws = Workspace(settings.workspace_root)
    first = comfyui_spec(settings, ws, client=lambda: None)
    other = Instance(port=18766, index=1, gpu=1, temp_directory=tmp_path / "tmp" / "comfyui-1")
    second = comfyui_spec(settings, ws, client=lambda: None, instance=other)

    def value(spec: ProcessSpec, flag: str) -> str:
        argv = list(spec.argv)
        return argv[argv.index(flag) + 1]

    assert value(first, "--port") == "18765" and value(second, "--port") == "18766"
    assert value(first, "--database-url") != value(second, "--database-url")
    assert value(second, "--database-url") == f"sqlite:///{database_path(18766)}"
    assert value(second, "--temp-directory") == str(other.temp_directory) and other.temp_directory.is_dir()
    assert "--temp-directory" not in first.argv  # ComfyUI's own default
    assert first.env is not None and second.env is not None
    assert second.env["CUDA_VISIBLE_DEVICES"] == "1" and second.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert first.env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert (first.name, first.log_file) == ("comfyui", "comfyui.log")
    assert (second.name, second.log_file) == ("comfyui-1", "comfyui-1.log")
    volume = ("--output-directory", "--input-directory", "--user-directory", "--extra-model-paths-config")
    for shared in volume:
        assert value(first, shared) == value(second, shared)
    assert Instance.first(settings) == Instance(port=18765)
