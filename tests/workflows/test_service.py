"""The workflow use case (prepare -> missing -> install_missing -> submit) against the fake ComfyUI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from comfyui_docker.catalog.schema import FileSpec
from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway, PromptRejected
from comfyui_docker.errors import AppError, InvalidInput, NotFound, ServiceUnavailable
from comfyui_docker.model_inputs import ModelRef
from comfyui_docker.settings import Settings
from comfyui_docker.workflows.missing import MissingModel
from comfyui_docker.workflows.object_info import ObjectInfoStore
from comfyui_docker.workflows.params import ParameterError
from comfyui_docker.workflows.service import Workflow, WorkflowService
from fakes.comfyui_root.launch import Comfy, run_comfyui

UI = {
    "last_node_id": 2,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            "widgets_values": [64, 48, 1, 0],
        },
        {
            "id": 2,
            "type": "SaveImage",
            "mode": 0,
            "title": "Result",
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "widgets_values": ["svc/test"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
}

LOADERS = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
    "2": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "3": {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"lora_name": "nowhere.safetensors", "model": ["1", 0]},
    },
}


@dataclass
class Task:
    id: str
    label: str
    files: list[FileSpec] = field(default_factory=list)
    state: str = "queued"
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "files": [f.path for f in self.files]}


class Sources:
    """The preset service as the use case sees it (workflows.service.ModelSources)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.started: list[Task] = []

    def providers(self, folder: str, filename: str) -> list[str]:
        return self.table.get(f"{folder}/{filename}", [])

    async def install(self, preset_id: str, variant: str | None = None) -> Task:
        self.started.append(Task(f"t{len(self.started) + 1}", preset_id))
        return self.started[-1]

    async def install_files(self, label: str, files: list[FileSpec]) -> Task:
        self.started.append(Task(f"t{len(self.started) + 1}", label, list(files)))
        return self.started[-1]

    async def wait(self, task_id: str) -> Task:
        task = next(t for t in self.started if t.id == task_id)
        task.state = "failed" if task.label == "BROKEN" else "done"
        task.error = (
            {"message": "checksum mismatch", "hint": "install it again"} if task.label == "BROKEN" else None
        )
        return task


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    with run_comfyui(tmp_path_factory.mktemp("comfy")) as running:
        yield running


@pytest.fixture
async def use(comfy: Comfy, tmp_path: Path) -> AsyncIterator[WorkflowService]:
    """The use case over the fake ComfyUI, with an empty volume of its own."""
    (tmp_path / "models").mkdir()
    async with aiohttp.ClientSession() as session:
        yield WorkflowService(
            definitions=ObjectInfoStore(tmp_path / "cache"),
            models_root=tmp_path / "models",
            gateway=ComfyUIGateway(ComfyUIClient(session, comfy.url)),
            presets=Sources({"vae/ae.safetensors": ["FLUX_SCHNELL"]}),
        )


async def test_prepare_converts_sets_and_keeps_the_definitions(use: WorkflowService) -> None:
    prepared = await use.prepare(
        use.accept(UI), sets=["Result.filename_prefix=svc/set"], values={"1.width": 32}, refresh=True
    )
    assert prepared.definitions is not None and prepared.definitions.live
    assert prepared.prompt["1"]["inputs"]["width"] == 32
    assert prepared.prompt["2"]["inputs"]["filename_prefix"] == "svc/set"
    assert [(c.node_id, c.input) for c in prepared.changes] == [("2", "filename_prefix"), ("1", "width")]
    assert prepared.extra_data() == {"extra_pnginfo": {"workflow": UI}}
    assert use.store.path.is_file()  # kept for when ComfyUI is down
    again = await use.prepare(use.accept(UI))
    assert again.definitions is not None and not again.definitions.live  # the kept copy
    api = await use.prepare(use.accept(prepared.prompt))
    assert api.definitions is None and api.prompt == prepared.prompt and api.extra_data() is None
    with pytest.raises(ParameterError):
        await use.prepare(use.accept(UI), values={"1.width": "wide"})


async def test_templates_files_and_bad_input(use: WorkflowService, tmp_path: Path) -> None:
    template = use.template("Image_capybara_v0_1_text_to_image")
    assert template.label == "template:Image_capybara_v0_1_text_to_image" and template.is_ui
    prepared = await use.prepare(template)
    assert any(n["class_type"] == "SaveImage" for n in prepared.prompt.values())
    with pytest.raises(NotFound):
        use.template("../../etc/passwd")
    (tmp_path / "wf.json").write_text('{"nodes": []}')
    assert use.load(str(tmp_path / "wf.json")) == Workflow({"nodes": []}, "wf.json")
    with pytest.raises(InvalidInput, match="not a ComfyUI workflow"):
        use.accept({"hello": "world"})
    with pytest.raises(NotFound):
        use.load(str(tmp_path / "nope.json"))


async def test_missing_reads_the_volume_comfyuis_lists_and_the_catalog(use: WorkflowService) -> None:
    live = await use.prepare(use.accept(LOADERS), refresh=True)
    missing = await use.missing(live)
    # x.safetensors is not on our volume, but ComfyUI lists it (its own models folder): not missing
    assert [m.path for m in missing] == ["vae/ae.safetensors", "loras/nowhere.safetensors"]
    ae, lora = missing
    assert ae.install == {"kind": "preset", "preset_id": "FLUX_SCHNELL"} and lora.install is None
    assert ae.to_dict()["providers"] == ["FLUX_SCHNELL"] and ae.to_dict()["node_id"] == "2"
    # a workflow checked without ComfyUI's current lists: every file not on the volume
    assert [m.path for m in await use.missing(use.accept(LOADERS))] == [
        "checkpoints/x.safetensors",
        "vae/ae.safetensors",
        "loras/nowhere.safetensors",
    ]
    (use.models_root / "vae").mkdir()
    (use.models_root / "vae" / "ae.safetensors").write_bytes(b"x")
    assert [m.path for m in await use.missing(live)] == ["loras/nowhere.safetensors"]


async def test_install_missing_starts_each_preset_once_and_the_urls_as_one_task(use: WorkflowService) -> None:
    def ref(path: str, url: str | None = None) -> ModelRef:
        folder, name = path.split("/", 1)
        return ModelRef(folder, name, url=url)

    missing = [
        MissingModel(ref("vae/ae.safetensors"), ("FLUX_SCHNELL",)),
        MissingModel(ref("diffusion_models/flux.safetensors"), ("FLUX_SCHNELL", "OTHER")),
        MissingModel(ref("loras/a.safetensors", "https://huggingface.co/o/r/blob/main/a.safetensors")),
        MissingModel(ref("loras/b.safetensors", "https://example.com/b.safetensors")),
        MissingModel(ref("checkpoints/nowhere.safetensors")),
    ]
    done = await use.install_missing(missing, label="workflow test")
    assert [t.to_dict()["label"] for t in done.tasks] == ["FLUX_SCHNELL", "workflow test"]
    files = done.tasks[1].files  # type: ignore[attr-defined]
    assert [(f.path, f.url) for f in files] == [
        ("loras/a.safetensors", "https://huggingface.co/o/r/resolve/main/a.safetensors"),
        ("loras/b.safetensors", "https://example.com/b.safetensors"),
    ]
    assert [m.path for m in done.unresolved] == ["checkpoints/nowhere.safetensors"]


async def test_install_and_wait_fails_first_without_a_source_and_says_why_a_download_failed(
    use: WorkflowService,
) -> None:
    sources = use.presets
    assert isinstance(sources, Sources)
    with pytest.raises(NotFound, match=r"no download URL is known for checkpoints/nowhere\.safetensors"):
        await use.install_and_wait(
            [
                MissingModel(ModelRef("vae", "ae.safetensors"), ("X",)),
                MissingModel(ModelRef("checkpoints", "nowhere.safetensors")),
            ],
            label="w",
        )
    assert sources.started == []  # nothing started
    await use.install_and_wait(
        [MissingModel(ModelRef("vae", "ae.safetensors"), ("FLUX_SCHNELL",))], label="w"
    )
    assert [t.state for t in sources.started] == ["done"]
    with pytest.raises(AppError, match="downloading the models failed: checksum mismatch") as caught:
        await use.install_and_wait([MissingModel(ModelRef("vae", "bad.safetensors"), ("BROKEN",))], label="w")
    assert caught.value.hint == "install it again"


async def test_a_rejection_names_the_presets_of_what_comfyui_lacks(use: WorkflowService) -> None:
    graph = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(PromptRejected) as caught:
        await use.submit(await use.prepare(use.accept(graph)))
    (missing,) = caught.value.details["missing"]
    assert (missing["folder"], missing["name"]) == ("vae", "ae.safetensors")
    assert missing["install"] == {"kind": "preset", "preset_id": "FLUX_SCHNELL"}
    ok = await use.submit(await use.prepare(use.accept(UI)), client_id="someone")
    assert ok.client_id == "someone" and ok.prompt_id


async def test_without_comfyui(tmp_path: Path) -> None:
    use = WorkflowService(definitions=ObjectInfoStore(tmp_path), models_root=tmp_path)
    with pytest.raises(ServiceUnavailable, match="--object-info"):
        await use.prepare(use.accept(UI))
    api = await use.prepare(use.accept({"1": {"class_type": "EmptyImage", "inputs": {}}}))
    with pytest.raises(ServiceUnavailable, match="not connected"):
        await use.submit(api)
    with pytest.raises(ServiceUnavailable, match="preset service"):
        await use.install_missing([], label="x")
    fixed = WorkflowService(
        definitions=ObjectInfoStore(tmp_path),
        models_root=tmp_path,
        fixed_definitions={
            "EmptyImage": {"input": {"required": {}}},
            "SaveImage": {"input": {"required": {}}},
        },
    )
    prepared = await fixed.prepare(fixed.accept(UI))
    assert prepared.definitions is not None and not prepared.definitions.live


def test_one_place_builds_comfyuis_address(tmp_path: Path) -> None:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path), "COMFYUI_INTERNAL_PORT": "8191"})
    assert settings.comfyui_url == "http://127.0.0.1:8191"
