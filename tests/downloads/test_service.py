"""PresetService end to end against the fake host: installs, sharing, space, hashes, resume, cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker.catalog import FileSpec
from comfyui_docker.downloads.guard import UrlGuard
from comfyui_docker.downloads.installer import LockOptions
from comfyui_docker.downloads.service import PresetService
from comfyui_docker.errors import DiskFull, InvalidInput, PresetNotFound, TaskNotFound
from comfyui_docker.events import DownloadProgress, EventBus, TaskState
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace
from fakes.model_host import ModelHost

from .conftest import KIB, MIB, blob, options, sha

#: workflow downloads from the test host: 127.0.0.1 is allowed because it is listed by address
LOCAL_HOST = UrlGuard(hosts=("127.0.0.1",))
VAE = blob(200 * KIB, seed=1)
MODEL_A = blob(400 * KIB, seed=2)
MODEL_B = blob(300 * KIB, seed=3)
GGUF = blob(100 * KIB, seed=4)


def catalog(host: ModelHost) -> str:
    host.add("/vae.safetensors", VAE)
    host.add("/a.safetensors", MODEL_A)
    host.add("/b.safetensors", MODEL_B)
    host.add("/a.gguf", GGUF)
    host.add("/gated.safetensors", blob(1000), require_token="nope")
    sha_a, url_a = sha(MODEL_A), host.url("/a.safetensors")
    return f"""
presets:
  PRESET_A:
    name: A
    type: video
    category: text-to-video
    files:
      - {{path: vae/shared_vae.safetensors, url: "{host.url("/vae.safetensors")}", size: {len(VAE)}}}
    variants:
      fp16:
        files: [{{path: diffusion_models/a.safetensors, url: "{url_a}", sha256: {sha_a}}}]
      gguf_q4:
        files: [{{path: diffusion_models/a.gguf, url: "{host.url("/a.gguf")}", size: "100KB"}}]
  PRESET_B:
    name: B
    type: image
    files:
      - {{path: vae/shared_vae.safetensors, url: "{host.url("/vae.safetensors")}", size: {len(VAE)}}}
      - {{path: checkpoints/b.safetensors, url: "{host.url("/b.safetensors")}"}}
  GATED_ONE:
    name: Gated
    type: image
    gated: true
    licence_url: https://huggingface.co/org/gated
    files:
      - {{path: loras/g.safetensors, url: "{host.url("/gated.safetensors")}"}}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "workspace")
    w.ensure()
    return w


@pytest.fixture
def make_service(ws: Workspace, host: ModelHost) -> Callable[..., PresetService]:
    text = catalog(host)

    def make(**kw: Any) -> PresetService:
        settings = Settings.from_env({"WORKSPACE_ROOT": str(ws.root)})
        kw.setdefault("fetch_options", options())
        kw.setdefault("space_margin", 0)
        kw.setdefault("lock_options", LockOptions(stale_after=2, heartbeat=0.2, poll=0.05))
        kw.setdefault("progress_interval", 0.05)
        kw.setdefault("url_guard", LOCAL_HOST)  # the model host is 127.0.0.1, listed by address
        return PresetService(settings, ws, kw.pop("bus", EventBus()), shipped_catalog=text, **kw)

    return make


@pytest.fixture
async def service(make_service: Callable[..., PresetService]) -> AsyncIterator[PresetService]:
    svc = make_service()
    await svc.start()
    yield svc
    await svc.close()


async def test_install_reports_states_progress_and_records(
    make_service: Callable[..., PresetService], ws: Workspace, host: ModelHost
) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    svc = make_service(bus=bus)
    await svc.start()
    try:
        assert svc.installed_state("PRESET_A") == "not_installed"
        task = await svc.install("preset_a")
        assert task.state == "queued" and task.variant == "fp16"
        done = await svc.wait(task.id)
        assert done.state == "done", done.error
        assert (ws.models / "diffusion_models/a.safetensors").read_bytes() == MODEL_A
        assert (ws.models / "vae/shared_vae.safetensors").read_bytes() == VAE
        assert svc.installed_state("PRESET_A") == "installed"
        d = done.to_dict()
        assert d["bytes_done"] == d["bytes_total"] == len(MODEL_A) + len(VAE)
        assert {f["state"] for f in d["files"]} == {"done"}
        assert svc.journal is not None
        assert svc.journal.url_hash(host.url("/vae.safetensors")) == (len(VAE), sha(VAE))
    finally:
        await svc.close()
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    states = [e.state for e in events if isinstance(e, TaskState)]
    assert states == ["queued", "downloading", "verifying", "done"]
    progress = [e for e in events if isinstance(e, DownloadProgress)]
    assert 1 <= len(progress) <= 20


async def test_listing_is_json_ready(service: PresetService) -> None:
    items = {p["id"]: p for p in service.list_presets()}
    assert set(items) == {"PRESET_A", "PRESET_B", "GATED_ONE"}
    a = items["PRESET_A"]
    assert a["installed"] == "not_installed" and a["default_variant"] == "fp16"
    assert [v["name"] for v in a["variants"]] == ["fp16", "gguf_q4"]
    assert items["GATED_ONE"]["gated"] and items["GATED_ONE"]["token_env"] == ["HF_TOKEN"]
    assert [p["id"] for p in service.list_presets(type="image")] == ["PRESET_B", "GATED_ONE"]
    assert [p["id"] for p in service.list_presets(category="text-to-video")] == ["PRESET_A"]
    import json

    json.dumps(service.list_presets())


async def test_shared_file_is_downloaded_once_and_kept_on_uninstall(
    service: PresetService, ws: Workspace, host: ModelHost
) -> None:
    assert (await service.wait((await service.install("PRESET_A")).id)).state == "done"
    assert (await service.wait((await service.install("PRESET_B")).id)).state == "done"
    assert len(host.requests_for("/vae.safetensors")) == 1
    assert service.owners_of("vae/shared_vae.safetensors") == ["PRESET_A", "PRESET_B"]
    assert service.owners_of("models/checkpoints/b.safetensors") == ["PRESET_B"]
    assert service.providers("vae", "shared_vae.safetensors") == ["PRESET_A", "PRESET_B"]
    assert service.providers("unet", "a.gguf") == ["PRESET_A"]
    removed = await service.uninstall("PRESET_A")
    assert sorted(removed) == ["diffusion_models/a.safetensors"]
    assert (ws.models / "vae/shared_vae.safetensors").exists()
    assert service.installed_state("PRESET_A") == "partial"
    assert service.installed_state("PRESET_B") == "installed"
    assert sorted(await service.uninstall("PRESET_B")) == [
        "checkpoints/b.safetensors",
        "vae/shared_vae.safetensors",
    ]
    assert service.installed_state("PRESET_B") == "not_installed"


async def test_variant_selects_other_files(service: PresetService, ws: Workspace) -> None:
    task = await service.install("PRESET_A", "gguf_q4")
    assert (await service.wait(task.id)).state == "done"
    assert (ws.models / "diffusion_models/a.gguf").read_bytes() == GGUF
    assert not (ws.models / "diffusion_models/a.safetensors").exists()
    assert service.installed_state("PRESET_A") == "installed"
    assert service.list_presets(type="video")[0]["installed_variant"] == "gguf_q4"


async def test_unknown_preset_and_bad_variant(service: PresetService) -> None:
    with pytest.raises(PresetNotFound) as info:
        await service.install("PRESET_C")
    assert "PRESET_A" in (info.value.hint or "")
    with pytest.raises(InvalidInput, match="no variant 'fp4'") as bad:
        await service.install("PRESET_A", "fp4")
    assert bad.value.hint == "variants: fp16, gguf_q4"
    with pytest.raises(TaskNotFound):
        service.task("nope")
    with pytest.raises(PresetNotFound):
        await service.uninstall("NOPE")


async def test_not_enough_space_is_refused_before_any_byte(
    make_service: Callable[..., PresetService], ws: Workspace, host: ModelHost
) -> None:
    svc = make_service(free_space=lambda p: 100 * KIB, space_margin=0)
    await svc.start()
    try:
        with pytest.raises(DiskFull) as info:
            await svc.install("PRESET_A", "gguf_q4")  # 300 KB needed, 100 KiB free
        assert info.value.details["needed"] == 200 * KIB + 100_000
        assert "GB free" in info.value.message
        assert svc.tasks() == []
        assert host.requests == []
    finally:
        await svc.close()


async def test_first_download_hash_holds_later_downloads(
    service: PresetService, ws: Workspace, host: ModelHost
) -> None:
    assert (await service.wait((await service.install("PRESET_B")).id)).state == "done"
    await service.uninstall("PRESET_B")
    host.files["/b.safetensors"].data = blob(len(MODEL_B), seed=99)  # upstream changed under the same URL
    task = await service.wait((await service.install("PRESET_B")).id)
    assert task.state == "failed"
    assert task.error is not None and task.error["code"] == "checksum_mismatch"
    assert not (ws.models / "checkpoints/b.safetensors").exists()


async def test_gated_file_fails_with_token_hint(service: PresetService) -> None:
    task = await service.wait((await service.install("GATED_ONE")).id)
    assert task.state == "failed" and task.error is not None
    assert task.error["code"] == "gated_model"
    assert "https://huggingface.co/org/gated" in task.error["hint"]


async def test_cancel_keeps_the_part(make_service: Callable[..., PresetService], ws: Workspace) -> None:
    svc = make_service()
    await svc.start()
    try:
        slow = ModelHost(rate=200 * KIB).start()
        try:
            spec = FileSpec(path="loras/slow.safetensors", url=slow.add("/slow", blob(MIB)))
            task = await svc.install_files("workflow:x", [spec])
            while task.bytes_done == 0:
                await asyncio.sleep(0.02)
            await svc.cancel(task.id)
        finally:
            slow.stop()
        assert task.state == "cancelled" and task.kind == "files"
        assert (ws.models / "loras/slow.safetensors.part").exists()
        assert not (ws.models / "loras/slow.safetensors").exists()
    finally:
        await svc.close()


async def test_close_then_start_resumes_unfinished_installs(
    make_service: Callable[..., PresetService], ws: Workspace
) -> None:
    data = blob(2 * MIB, seed=7)
    with ModelHost(rate=1 * MIB) as slow:
        spec = FileSpec(path="checkpoints/r.safetensors", url=slow.add("/r", data), sha256=sha(data))
        svc = make_service()
        await svc.start()
        task = await svc.install_files("workflow:resume", [spec])
        while task.bytes_done < 600 * KIB:
            await asyncio.sleep(0.02)
        await svc.close()
        assert not (ws.models / "checkpoints/r.safetensors").exists()
        sent_before = slow.bytes_sent

        svc2 = make_service()
        await svc2.start()
        try:
            resumed = svc2.task(task.id)
            assert (await svc2.wait(resumed.id)).state == "done", resumed.error
        finally:
            await svc2.close()
        assert (ws.models / "checkpoints/r.safetensors").read_bytes() == data
        assert sent_before > 600 * KIB
        assert slow.bytes_sent - len(data) < 512 * KIB  # bytes sent twice: at most what was in flight


async def test_queue_startup_warns_on_unknown_ids(
    service: PresetService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tasks = await service.queue_startup(["PRESET_B", "PRESET_AA"])
    assert [t.preset_id for t in tasks] == ["PRESET_B"]
    assert "unknown preset 'PRESET_AA'" in caplog.text and "PRESET_A" in caplog.text
    await service.wait(tasks[0].id)


async def test_user_catalog_problems_do_not_stop_start(
    make_service: Callable[..., PresetService], ws: Workspace
) -> None:
    ws.user_presets.write_text(
        "presets:\n  MINE:\n    name: x\n    type: image\n    files: [{path: lora/x.safetensors, url: 'https://e.com/x'}]\n"
    )
    svc = make_service()
    await svc.start()
    try:
        assert "MINE" not in svc.catalog.presets and "PRESET_A" in svc.catalog.presets
        (problem,) = svc.catalog.problems
        assert "did you mean 'loras'" in str(problem) and str(problem).startswith(f"{ws.user_presets}:5 ")
    finally:
        await svc.close()


async def test_file_present_without_record_is_adopted_not_downloaded(
    service: PresetService, ws: Workspace, host: ModelHost
) -> None:
    dest = ws.models / "checkpoints/b.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(MODEL_B)
    task = await service.wait((await service.install("PRESET_B")).id)
    assert task.state == "done"
    assert host.requests_for("/b.safetensors") == []


async def test_listing_works_before_start(make_service: Callable[..., PresetService]) -> None:
    svc = make_service()
    svc.load_catalog()
    assert {p["installed"] for p in svc.list_presets()} == {"not_installed"}


async def test_new_settings_apply_to_the_next_download(ws: Workspace, host: ModelHost) -> None:
    import dataclasses

    settings = Settings.from_env({"WORKSPACE_ROOT": str(ws.root)})
    svc = PresetService(settings, ws, EventBus(), shipped_catalog=catalog(host))
    await svc.start()
    try:
        assert svc.fetch_options.connections == 8
        svc.apply_settings(dataclasses.replace(settings, download_connections=2, download_parallel_files=1))
        assert svc.fetch_options.connections == 2
        assert svc._installer is not None and svc._installer.parallel is svc._parallel
        assert svc.settings.download_parallel_files == 1
    finally:
        await svc.close()


def test_only_dead_local_owners_are_resumed() -> None:
    import json
    import os
    import socket

    from comfyui_docker.downloads.tasks import may_resume, process_identity

    me = process_identity()
    assert may_resume("", me) and may_resume(me, me)
    from comfyui_docker.downloads.locks import process_started

    parent = os.getppid()
    live = json.dumps({"host": socket.gethostname(), "pid": parent, "started": process_started(parent)})
    assert not may_resume(live, me)  # another live runtime on this host is still running it
    dead = json.dumps({"host": socket.gethostname(), "pid": 2**22 + 777, "started": 1.0})
    assert may_resume(dead, me)
    other_pod = json.dumps({"host": "another-pod", "pid": 1, "started": 1.0})
    assert not may_resume(other_pod, me)


async def test_catalog_loaded_before_start_is_parsed_and_reported_once(
    make_service: Callable[..., PresetService], ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """`comfyui-docker start` loads the catalog in its own phase, then starts the service."""
    ws.user_presets.write_text("presets:\n  BAD_ONE:\n    files:\n      - path: lora/x.safetensors\n")
    svc = make_service()
    with caplog.at_level("WARNING", logger="comfyui_docker.downloads.service"):
        loaded = svc.load_catalog()
        assert [r for r in caplog.records if "BAD_ONE" in r.getMessage()], "reported by load_catalog"
        caplog.clear()
        await svc.start()
        try:
            assert svc.catalog is loaded, "start() parsed the catalog a second time"
            assert not [r for r in caplog.records if "preset catalog" in r.getMessage()]
        finally:
            await svc.close()


# ---- never through a symbolic link out of the models folder -------------------------------------
async def install_at(svc: PresetService, host: ModelHost, path: str) -> Any:
    url = host.add("/" + path.replace("/", "_"), blob(4096))
    task = await svc.install_files("workflow:links", [FileSpec(path=path, url=url)])
    return await svc.wait(task.id)


async def test_a_folder_linked_out_of_the_models_folder_is_refused(
    service: PresetService,
    host: ModelHost,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.models / "loras").rmdir()
    (ws.models / "loras").symlink_to(outside)
    task = await install_at(service, host, "loras/evil/x.safetensors")
    assert task.state == "failed"
    assert "outside the models folder" in task.error["message"]
    assert list(outside.iterdir()) == []  # not even the sub-folder was made there
    # elsewhere on the volume is outside models/ too
    (ws.models / "vae").rmdir()
    (ws.models / "vae").symlink_to(ws.root / "output")
    task = await install_at(service, host, "vae/x.safetensors")
    assert task.state == "failed" and not (ws.root / "output" / "x.safetensors.part").exists()


async def test_a_part_file_planted_as_a_link_is_not_written_through(
    service: PresetService,
    host: ModelHost,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (ws.models / "checkpoints" / "x.safetensors.part").symlink_to(victim)
    task = await install_at(service, host, "checkpoints/x.safetensors")
    assert task.state == "failed" and "symbolic link" in task.error["message"]
    assert victim.read_text() == "keep me"
    assert not (ws.models / "checkpoints" / "x.safetensors").exists()


async def test_a_link_inside_the_models_folder_still_works(
    service: PresetService,
    host: ModelHost,
    ws: Workspace,
) -> None:
    (ws.models / "loras" / "mine").mkdir()
    (ws.models / "loras" / "alias").symlink_to(ws.models / "loras" / "mine")
    task = await install_at(service, host, "loras/alias/x.safetensors")
    assert task.state == "done", task.error
    assert (ws.models / "loras" / "mine" / "x.safetensors").stat().st_size == 4096
