"""The start-up phase of the volume's nodes: free when nothing changed, installs what is missing
in time, leaves a failing node out, hands the rest to the background, starts a new layer for a
new image, and lets two runtimes on one volume take turns."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from comfyui_docker.downloads.locks import VolumeLock
from comfyui_docker.nodes import report
from comfyui_docker.nodes.service import NodeService
from comfyui_docker.nodes.startup import finish, prepare, run_phase
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace

from .kit import image_venv, node_folder


async def _seed(svc: NodeService, tmp_path: Path) -> None:
    """A layer that has seen a start already (not a new image kind)."""
    await svc.install(str(node_folder(tmp_path / "src", "seed")))


def _dists(site: Path) -> list[str]:
    return sorted(p.name for p in site.iterdir() if p.name.endswith(".dist-info"))


async def test_nothing_to_do_costs_no_pip_and_no_write(node_service: NodeService, tmp_path: Path) -> None:
    await _seed(node_service, tmp_path)
    layer = await node_service.layer()
    before = layer.state_path.stat().st_mtime_ns
    plan = await prepare(node_service)
    assert plan.nodes == 1 and plan.checked == [] and plan.installed == [] and plan.left_out == []
    assert not plan.waited and not plan.pending and layer.state_path.stat().st_mtime_ns == before
    assert "1 volume node(s)" in plan.detail and layer.key in plan.detail
    assert (node_service.workspace.user / "__manager" / "config.ini").read_text().count("use_uv = False") == 1


async def test_new_or_changed_requirements_are_checked_and_installed(
    node_service: NodeService, tmp_path: Path
) -> None:
    await _seed(node_service, tmp_path)
    node_folder(node_service.volume_dir, "by_hand", requirements="nodepkg==1.0\n")  # copied onto the volume
    node_folder(node_service.volume_dir, "met", requirements="tinydep>=1\n")  # the image has it
    node_folder(node_service.volume_dir, "plain")  # no requirements at all
    plan = await prepare(node_service)
    assert sorted(plan.checked) == ["by_hand", "met", "plain"] and plan.installed == ["by_hand"]
    layer = await node_service.layer()
    assert _dists(layer.site) == ["nodepkg-1.0.dist-info"]
    assert all(r.ok for r in layer.read_state().values())
    (node_service.volume_dir / "by_hand" / "requirements.txt").write_text("nodepkg==2.0\n")  # changed
    plan = await prepare(node_service)
    assert plan.checked == ["by_hand"] and plan.installed == ["by_hand"]
    assert _dists(layer.site) == ["nodepkg-2.0.dist-info"]


async def test_a_failing_node_is_left_out_and_comfyui_args_say_so(
    node_service: NodeService, tmp_path: Path
) -> None:
    await _seed(node_service, tmp_path)
    node_folder(node_service.volume_dir, "old_torch", requirements="wantstorch\n")
    node_folder(node_service.volume_dir, "typo", requirements="no-such-package-xyz\n")
    plan = await prepare(node_service)
    assert plan.left_out == ["old_torch", "typo"]
    assert "torch==2.0.0" in plan.failed["old_torch"] and "no-such-package-xyz" in plan.failed["typo"]
    args = node_service.whitelist_args(plan.left_out)
    assert args[:2] == ["--disable-all-custom-nodes", "--whitelist-custom-nodes"]
    assert "seed" in args and "old_torch" not in args and "typo" not in args
    status = {n["name"]: n for n in (await report.status(node_service))["volume"]}
    assert (
        status["old_torch"]["packages"]["state"] == "failed"
        and "conflicts" in status["old_torch"]["packages"]["error"]
    )
    # next start: a conflict is final until the requirements change; another failure is tried again
    plan = await prepare(node_service)
    assert plan.checked == ["typo"] and plan.left_out == ["old_torch", "typo"]
    (node_service.volume_dir / "old_torch" / "requirements.txt").write_text("otherpkg\n")
    (node_service.volume_dir / "typo" / "requirements.txt").write_text("nodepkg\n")
    plan = await prepare(node_service)
    assert plan.left_out == [] and node_service.whitelist_args(plan.left_out) == []


async def test_past_its_time_bound_the_rest_goes_to_the_background(
    node_service: NodeService, tmp_path: Path
) -> None:
    await _seed(node_service, tmp_path)
    node_folder(node_service.volume_dir, "late", requirements="nodepkg\n")
    plan = await prepare(node_service, budget=0)
    assert [n.name for n in plan.pending] == ["late"] and plan.left_out == []  # loaded anyway
    lines: list[str] = []
    ready = await finish(node_service, plan, lines.append)
    assert ready == ["late"] and not plan.pending
    assert (await node_service.layer()).read_state()["late"].ok
    assert any("requirements done for 1 of 1" in line for line in lines)


async def test_a_new_image_starts_a_new_layer_in_the_background(
    node_service: NodeService, tmp_path: Path, wheels: Path, make_settings: Callable[..., Settings]
) -> None:
    await node_service.install(str(node_folder(tmp_path / "src", "needs", requirements="nodepkg\n")))
    old = await node_service.layer()
    other_python = image_venv(tmp_path / "newer-image", wheels, torch="2.0.0")  # another torch build
    settings = make_settings(root=node_service.workspace.root, python=other_python)
    svc = NodeService(settings, node_service.workspace)
    lines: list[str] = []
    plan = await prepare(svc, on_line=lines.append)
    assert plan.new_layer and [n.name for n in plan.pending] == ["needs"] and plan.layer is not None
    assert plan.layer.key != old.key and plan.layer.key.endswith("torch2.0.0")
    assert any("new package layer" in line and "background" in line for line in lines)
    assert await finish(svc, plan) == ["needs"]
    assert _dists(plan.layer.site) == ["nodepkg-2.0.dist-info"] and _dists(old.site) == [
        "nodepkg-2.0.dist-info"
    ]


RUNTIME = textwrap.dedent(
    """
    import asyncio, json, sys
    from comfyui_docker.nodes.service import NodeService
    from comfyui_docker.nodes.startup import prepare
    from comfyui_docker.settings import Settings
    from comfyui_docker.workspace import Workspace

    async def main():
        settings = Settings.from_env()
        svc = NodeService(settings, Workspace(settings.workspace_root))
        plan = await prepare(svc, budget=120)
        print(json.dumps({"installed": plan.installed, "waited": plan.waited, "checked": plan.checked}))

    asyncio.run(main())
    """
)


async def test_two_runtimes_on_one_volume_one_installs_the_other_waits(
    node_service: NodeService, tmp_path: Path, offline: dict[str, str]
) -> None:
    await _seed(node_service, tmp_path)
    node_folder(node_service.volume_dir, "shared", requirements="nodepkg\n")
    settings = node_service.settings
    env = {
        **os.environ,
        **offline,
        "WORKSPACE_ROOT": str(settings.workspace_root),
        "COMFYUI_ROOT": str(settings.comfyui_root),
        "COMFYUI_PYTHON": str(settings.comfyui_python),
    }
    lock = VolumeLock(node_service.workspace.cache / "locks" / "custom-nodes.lock")
    await lock.acquire()  # both runtimes find the volume busy, then race for it
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNTIME], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    await asyncio.sleep(1.5)
    await lock.release()
    outs = []
    for proc in procs:
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, err.decode()
        outs.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sorted(len(o["installed"]) for o in outs) == [0, 1]
    assert all(o["waited"] for o in outs)
    loser = next(o for o in outs if not o["installed"])
    assert loser["checked"] == []  # it re-read the state after the wait: nothing left to do
    layer = await node_service.layer()
    assert _dists(layer.site) == ["nodepkg-2.0.dist-info"]
    assert layer.read_state()["shared"].by.endswith(
        str(procs[[len(o["installed"]) for o in outs].index(1)].pid)
    )


async def test_the_phase_is_skipped_without_a_comfyui_of_its_own(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"WORKSPACE_ROOT": str(tmp_path / "ws"), "COMFYUI_ROOT": str(tmp_path / "none")}, cwd=tmp_path
    )
    plan = await run_phase(Services(settings=settings, workspace=Workspace(settings.workspace_root)))
    assert plan.layer is None and "not installed" in plan.detail
    from fakes.comfyui_root.launch import FAKE_ROOT

    settings = Settings.from_env(
        {
            "WORKSPACE_ROOT": str(tmp_path / "ws"),
            "COMFYUI_ROOT": str(FAKE_ROOT),
            "COMFYUI_PYTHON": sys.executable,
        },
        cwd=tmp_path,
    )
    services = Services(settings=settings, workspace=Workspace(settings.workspace_root))
    plan = await run_phase(services)
    assert plan.layer is None and "dashboard's own venv" in plan.detail and services.nodes is None


@pytest.mark.parametrize("budget", [0.0])
async def test_a_volume_busy_past_the_budget_does_not_hold_the_start(
    node_service: NodeService, tmp_path: Path, budget: float
) -> None:
    await _seed(node_service, tmp_path)
    node_folder(node_service.volume_dir, "waiting", requirements="nodepkg\n")
    lock = VolumeLock(node_service.workspace.cache / "locks" / "custom-nodes.lock")
    await lock.acquire()
    try:
        plan = await prepare(node_service, budget=budget)
    finally:
        await lock.release()
    assert plan.waited and [n.name for n in plan.pending] == ["waiting"] and plan.left_out == []


async def test_nodes_of_the_users_own_folder_stay_whitelisted(
    node_service: NodeService, tmp_path: Path
) -> None:
    await _seed(node_service, tmp_path)
    mine = tmp_path / "my_nodes"
    node_folder(mine, "from_my_yaml")
    node_service.workspace.user_yaml.write_text(f"mine:\n  custom_nodes: {mine}\n")
    node_folder(node_service.volume_dir, "old_torch", requirements="wantstorch\n")
    plan = await prepare(node_service)
    args = node_service.whitelist_args(plan.left_out)
    assert "from_my_yaml" in args and "seed" in args and "old_torch" not in args


async def test_a_setup_problem_is_reported_and_the_start_goes_on(
    node_service: NodeService, tmp_path: Path
) -> None:
    await _seed(node_service, tmp_path)
    manager_dir = node_service.workspace.user / "__manager"
    shutil.rmtree(manager_dir, ignore_errors=True)
    manager_dir.write_text("a file where the manager's folder goes")
    plan = await prepare(node_service)
    assert plan.layer is not None and any("ComfyUI-Manager's config" in p for p in plan.problems)
