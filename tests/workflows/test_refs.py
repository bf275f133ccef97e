"""Model references of a workflow and the missing-models check (issue 5 uses missing_models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comfyui_docker.workflows.refs import folder_for, missing_models, model_refs
from comfyui_docker.workflows.templates import TemplateLibrary

API = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "style/ink.safetensors", "model": ["1", 0]}},
    "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit.safetensors"}},
    "4": {
        "class_type": "DualCLIPLoader",
        "inputs": {"clip_name1": "t5.safetensors", "clip_name2": "l.safetensors"},
    },
    "5": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors"}},
    "6": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
    "7": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}},
    "8": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x.pth"}},
    "9": {"class_type": "StyleModelLoader", "inputs": {"style_model_name": "redux.safetensors"}},
    "10": {"class_type": "SomeCustomLoader", "inputs": {"ckpt_name": "c.safetensors", "strength": 1}},
}


def _put(root: Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_folders_of_api_inputs() -> None:
    refs = {(r.folder, r.name) for r in model_refs(API)}
    assert refs == {
        ("checkpoints", "sd15.safetensors"),
        ("loras", "style/ink.safetensors"),
        ("clip_vision", "vit.safetensors"),
        ("text_encoders", "t5.safetensors"),
        ("text_encoders", "l.safetensors"),
        ("diffusion_models", "flux.safetensors"),
        ("controlnet", "canny.safetensors"),
        ("upscale_models", "4x.pth"),
        ("style_models", "redux.safetensors"),
        ("checkpoints", "c.safetensors"),
    }
    assert folder_for("ModelPatchLoader", "name") == "model_patches"
    assert folder_for("KSampler", "seed") is None


def test_missing_models_checks_the_volume(tmp_path: Path) -> None:
    _put(tmp_path, "checkpoints/sd15.safetensors")
    _put(tmp_path, "loras/style/ink.safetensors")
    _put(tmp_path, "clip/t5.safetensors")  # the legacy folder ComfyUI also reads
    _put(tmp_path, "unet/flux.safetensors")
    missing = {(m["folder"], m["name"]) for m in missing_models({"prompt": API}, tmp_path)}
    assert ("checkpoints", "sd15.safetensors") not in missing
    assert ("text_encoders", "t5.safetensors") not in missing
    assert ("diffusion_models", "flux.safetensors") not in missing
    assert ("text_encoders", "l.safetensors") in missing
    assert all(m["present"] is False for m in missing_models(API, tmp_path))


def test_names_that_leave_the_folder_are_never_present(tmp_path: Path) -> None:
    _put(tmp_path, "secret.safetensors")
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "../secret.safetensors"}}}
    assert [m["name"] for m in missing_models(api, tmp_path / "checkpoints")] == ["../secret.safetensors"]


def test_template_declared_models_with_urls(
    tmp_path: Path, object_info: dict[str, Any], library: TemplateLibrary
) -> None:
    workflow = library.load("Image_capybara_v0_1_image_edit")
    _put(tmp_path, "vae/hunyuanvideo15_vae_fp16.safetensors")
    for info in (object_info, None):  # with node definitions, and without
        missing = missing_models(workflow, tmp_path, info)
        assert {(m["folder"], m["name"]) for m in missing} == {
            ("diffusion_models", "capybara_v0.1.safetensors"),
            ("text_encoders", "qwen_2.5_vl_7b.safetensors"),
            ("text_encoders", "byt5_small_glyphxl_fp16.safetensors"),
            ("clip_vision", "sigclip_vision_patch14_384.safetensors"),
        }
        assert all(m["url"] and "/resolve/" in m["url"] for m in missing)


def test_every_template_model_widget_is_declared(
    object_info: dict[str, Any], library: TemplateLibrary
) -> None:
    """Reading the widgets finds the files the templates declare (with their URL).

    One upstream inconsistency (0.1.50): the subgraph instance of image_mage_flow_turbo_t2i_int8
    saves a turbo model name for its promoted unet_name, while the inner loader declares (with a
    URL) a different file. The prompt runs the saved name, so it is reported without a URL.
    """
    undeclared = []
    for name in library.infos():
        refs = model_refs(library.load(name), object_info)
        undeclared += [(name, r.folder, r.name) for r in refs if not r.url]
    assert undeclared == [
        ("image_mage_flow_turbo_t2i_int8", "diffusion_models", "mage_flow_turbo_int8_convrot.safetensors")
    ]


def test_ui_workflow_without_definitions_uses_known_loaders(tmp_path: Path) -> None:
    workflow = {
        "nodes": [
            {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["m.ckpt"]},
            {"id": 2, "type": "LoraLoader", "mode": 4, "widgets_values": ["skip.safetensors", 1, 1]},
            {"id": 3, "type": "VAELoader", "mode": 0, "widgets_values": {"vae_name": "v.safetensors"}},
        ],
        "links": [],
    }
    assert {(m["folder"], m["name"]) for m in missing_models(workflow, tmp_path)} == {
        ("checkpoints", "m.ckpt"),
        ("vae", "v.safetensors"),
    }
