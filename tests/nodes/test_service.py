"""Install, update, remove and check volume nodes, for real: pip into the layer, git, archives."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from comfyui_docker.errors import Conflict, FetchError, InvalidInput, NotFound, RequirementConflict
from comfyui_docker.nodes import report
from comfyui_docker.nodes.inventory import NodeInfo
from comfyui_docker.nodes.service import NodeService

from .kit import BareRepo, node_folder


def layer_dists(svc: NodeService, layer_site: Path) -> list[str]:
    return (
        sorted(p.name for p in layer_site.iterdir() if p.name.endswith(".dist-info"))
        if layer_site.is_dir()
        else []
    )


def nothing_left(svc: NodeService) -> None:
    staging = svc.workspace.cache / "nodes" / "staging"
    assert not staging.exists() or not any(staging.iterdir())
    assert not any(svc.volume_dir.iterdir())


async def test_install_from_a_folder_puts_its_package_in_the_layer(
    node_service: NodeService, tmp_path: Path
) -> None:
    src = node_folder(tmp_path, "my_node", requirements="nodepkg==1.0\n")
    lines: list[str] = []
    result = await node_service.install(str(src), on_line=lines.append)
    dest = node_service.volume_dir / "my_node"
    assert result["name"] == "my_node" and (dest / "__init__.py").is_file()
    layer = await node_service.layer()
    assert layer_dists(node_service, layer.site) == ["nodepkg-1.0.dist-info"]
    rec = layer.read_state()["my_node"]
    assert rec.ok and rec.hash == NodeInfo("my_node", "volume", dest, True).requirements_hash(
        layer.image.fingerprint
    )
    assert node_service.sources.get("my_node")["kind"] == "folder"
    assert any("restart ComfyUI" in line for line in lines)
    with pytest.raises(Conflict, match="already on the volume"):
        await node_service.install(str(src))


async def test_a_conflicting_requirement_is_refused_named_and_nothing_is_installed(
    node_service: NodeService, tmp_path: Path
) -> None:
    src = node_folder(tmp_path, "wants_old_torch", requirements="otherpkg\nwantstorch\n")
    with pytest.raises(RequirementConflict) as info:
        await node_service.install(str(src))
    assert "torch==2.0.0" in str(info.value) and "conflict" in str(info.value)
    assert info.value.status == 409 and info.value.details["conflict"]
    nothing_left(node_service)
    layer = await node_service.layer()
    assert layer_dists(node_service, layer.site) == []  # not even otherpkg
    assert "wants_old_torch" not in layer.read_state()


async def test_bad_sources_leave_nothing_behind(node_service: NodeService, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x.py").write_text("")
    with pytest.raises(InvalidInput, match=r"no __init__\.py"):
        await node_service.install(str(plain))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("bad/__init__.py", "")
        zf.writestr("../../escape.py", "")
    with pytest.raises(InvalidInput, match="outside the archive"):
        await node_service.install(str(bad))
    with pytest.raises(FetchError):
        await node_service.install((tmp_path / "nothing.git").as_uri())
    nothing_left(node_service)
    assert not (node_service.workspace.root / "escape.py").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "x.disabled", "__pycache__", "/abs"])
async def test_bad_names_are_refused(node_service: NodeService, tmp_path: Path, name: str) -> None:
    src = node_folder(tmp_path, "n")
    with pytest.raises(InvalidInput, match="not a valid node name"):
        await node_service.install(str(src), name=name)
    for call in (node_service.remove(name), node_service.update(name)):
        with pytest.raises(InvalidInput):
            await call
    nothing_left(node_service)


async def test_links_out_of_the_volume_are_refused(node_service: NodeService, tmp_path: Path) -> None:
    outside = node_folder(tmp_path, "outside")
    os.symlink(outside, node_service.volume_dir / "escape")
    for call in (node_service.remove("escape"), node_service.update("escape")):
        with pytest.raises(InvalidInput, match="outside the volume"):
            await call
    assert (outside / "__init__.py").is_file()
    with pytest.raises(NotFound):
        await node_service.remove("not-there")


async def test_a_name_the_image_has_is_refused(node_service: NodeService, tmp_path: Path) -> None:
    image_dir = tmp_path / "image_custom_nodes"
    node_folder(image_dir, "Shared")
    node_service.image_dir = image_dir
    with pytest.raises(Conflict, match="image already has"):
        await node_service.install(str(node_folder(tmp_path / "src", "Shared")))
    nothing_left(node_service)


async def test_install_script_runs_only_when_allowed(node_service: NodeService, tmp_path: Path) -> None:
    src = node_folder(tmp_path, "scripted")
    (src / "install.py").write_text("open('ran.txt', 'w').write('yes')\n")
    lines: list[str] = []
    await node_service.install(str(src), on_line=lines.append)
    assert not (node_service.volume_dir / "scripted" / "ran.txt").exists()
    assert any("--allow-install-script" in line for line in lines)
    await node_service.install(str(src), name="scripted2", allow_script=True)
    assert (node_service.volume_dir / "scripted2" / "ran.txt").read_text() == "yes"
    failing = node_folder(tmp_path, "failing")
    (failing / "install.py").write_text("raise SystemExit(3)\n")
    from comfyui_docker.errors import NodeInstallError

    with pytest.raises(NodeInstallError, match="exit code 3"):
        await node_service.install(str(failing), allow_script=True)
    assert not (node_service.volume_dir / "failing").exists()


async def test_git_install_at_a_commit_then_update_and_remove(
    node_service: NodeService, tmp_path: Path
) -> None:
    repo = BareRepo(tmp_path, "ComfyUI-Git")
    init = (node_folder(tmp_path / "tpl", "t") / "__init__.py").read_text()
    first = repo.commit({"__init__.py": init})
    second = repo.commit({"requirements.txt": "nodepkg==1.0\n"})
    result = await node_service.install(f"{repo.url}@{first}")
    assert result["name"] == "ComfyUI-Git" and result["commit"] == first
    layer = await node_service.layer()
    assert layer_dists(node_service, layer.site) == []  # no requirements at that commit
    # pinned to a commit: it does not move by itself
    with pytest.raises(InvalidInput, match="--ref"):
        await node_service.update("ComfyUI-Git")
    updated = await node_service.update("ComfyUI-Git", ref="main")
    assert updated["commit"] == second and updated["changed"]
    assert layer_dists(node_service, layer.site) == ["nodepkg-1.0.dist-info"]
    # a newer commit whose requirement conflicts: refused, back at the old commit
    repo.commit({"requirements.txt": "wantstorch\n"})
    with pytest.raises(RequirementConflict):
        await node_service.update("ComfyUI-Git")
    assert NodeInfo("x", "volume", node_service.volume_dir / "ComfyUI-Git", True).commit() == second
    assert (await node_service.remove("ComfyUI-Git"))["status"] == "removed"
    assert not (node_service.volume_dir / "ComfyUI-Git").exists()
    assert "ComfyUI-Git" not in layer.read_state() and node_service.sources.get("ComfyUI-Git") is None
    assert layer_dists(node_service, layer.site) == ["nodepkg-1.0.dist-info"]  # packages stay


async def test_update_of_a_folder_node_copies_its_source_again(
    node_service: NodeService, tmp_path: Path
) -> None:
    src = node_folder(tmp_path, "copied")
    await node_service.install(str(src))
    (src / "requirements.txt").write_text("otherpkg\n")
    (src / "extra.py").write_text("X = 1\n")
    await node_service.update("copied")
    assert (node_service.volume_dir / "copied" / "extra.py").is_file()
    layer = await node_service.layer()
    assert layer_dists(node_service, layer.site) == ["otherpkg-1.0.dist-info"]
    assert not [p for p in node_service.volume_dir.iterdir() if p.name.startswith(".")]


async def test_status_and_check_report_imports_and_missing_requirements(
    node_service: NodeService, tmp_path: Path
) -> None:
    await node_service.install(str(node_folder(tmp_path, "fine", requirements="nodepkg\n")))
    broken = node_folder(
        node_service.volume_dir, "broken", requirements="otherpkg>=1\n# a comment\n--index-url x\n"
    )
    logs = node_service.workspace.logs
    logs.mkdir(parents=True, exist_ok=True)
    stamp = "2026-12-04 16:33:25.123"
    (logs / "comfyui.log").write_text(
        "\n".join(
            [
                f"{stamp} [WARNING] Traceback (most recent call last):",
                f'{stamp}   File "{broken}/__init__.py", line 1, in <module>',
                f"{stamp} ModuleNotFoundError: No module named 'otherpkg'",
                f"{stamp} ",
                f"{stamp} [WARNING] Cannot import {broken} module for custom nodes: "
                "No module named 'otherpkg'",
                f"{stamp} [INFO] ",
                f"{stamp} Import times for custom nodes:",
                f"{stamp} [INFO]    0.0 seconds: {node_service.volume_dir / 'fine'}",
                f"{stamp} [INFO]    0.1 seconds (IMPORT FAILED): {broken}",
                f"{stamp} [INFO] ",
                f"{stamp} [INFO] Starting server",
            ]
        )
        + "\n"
    )
    status = await report.status(node_service)
    by = {n["name"]: n for n in status["volume"]}
    assert by["fine"]["import"] == {"state": "ok", "error": ""} and by["fine"]["packages"]["state"] == "ok"
    assert by["broken"]["import"] == {"state": "failed", "error": "No module named 'otherpkg'"}
    assert by["broken"]["packages"]["state"] == "unchecked"  # copied by hand: not seen by a start yet
    assert status["layer"]["key"].endswith("torch2.9.1") and status["imports_seen"]
    checked = {n["name"]: n for n in await report.check(node_service)}
    assert checked["broken"]["missing"] == ["otherpkg>=1 (not installed)"]
    assert checked["broken"]["unchecked"] == ["--index-url x"]
    assert checked["fine"]["missing"] == [] and checked["fine"]["import"]["state"] == "ok"
    json.dumps(checked)  # what `nodes check --json` prints


async def test_an_option_is_never_taken_for_a_commit(node_service: NodeService, tmp_path: Path) -> None:
    repo = BareRepo(tmp_path, "opt")
    repo.commit({"__init__.py": ""})
    await node_service.install(repo.url)
    for ref in ("--upload-pack=touch /tmp/x", "-b", "../x", ""):
        with pytest.raises(InvalidInput):
            await node_service.update("opt", ref=ref or " ")
