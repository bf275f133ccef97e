"""--set NODE.INPUT=VALUE: node by title, id or class; values checked against the definition."""

from __future__ import annotations

from typing import Any

import pytest

from comfyui_docker.workflows.params import (
    ParameterError,
    apply_sets,
    apply_values,
    main_inputs,
    parse_assignment,
)


@pytest.fixture
def prompt() -> dict[str, Any]:
    return {
        "3": {
            "class_type": "KSampler",
            "_meta": {"title": "KSampler"},
            "inputs": {
                "seed": 1,
                "steps": 20,
                "cfg": 8.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "Load Checkpoint"},
            "inputs": {"ckpt_name": "a.safetensors"},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "_meta": {"title": "Size 1.5"},
            "inputs": {"width": 512, "height": 512, "batch_size": 1},
        },
        "6": {
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "Positive Prompt"},
            "inputs": {"text": "x", "clip": ["4", 1]},
        },
        "7": {
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "Negative Prompt"},
            "inputs": {"text": "y", "clip": ["4", 1]},
        },
        "9:2": {
            "class_type": "ResizeImageMaskNode",
            "_meta": {"title": "Resize"},
            "inputs": {
                "resize_type": "scale dimensions",
                "resize_type.width": 1024,
                "resize_type.height": 1024,
                "resize_type.crop": "center",
                "scale_method": "lanczos",
            },
        },
        "10": {"class_type": "SaveImage", "_meta": {"title": "Save"}, "inputs": {"filename_prefix": "a"}},
        "11": {"class_type": "SaveImage", "_meta": {"title": "Save"}, "inputs": {"filename_prefix": "b"}},
    }


def test_set_by_title_id_and_class(prompt: dict[str, Any], object_info: dict[str, Any]) -> None:
    out, changes = apply_sets(
        prompt,
        object_info,
        [
            "KSampler.seed=42",
            "Positive Prompt.text=a cat = cute",
            "5.width=768",
            "Size 1.5.height=640",
            "9:2.resize_type.width=300",
            "KSampler.cfg=4.5",
            "KSampler.sampler_name=dpmpp_2m",
        ],
    )
    assert out["3"]["inputs"]["seed"] == 42 and isinstance(out["3"]["inputs"]["seed"], int)
    assert out["6"]["inputs"]["text"] == "a cat = cute"
    assert out["5"]["inputs"]["width"] == 768 and out["5"]["inputs"]["height"] == 640
    assert out["9:2"]["inputs"]["resize_type.width"] == 300
    assert out["3"]["inputs"]["cfg"] == 4.5
    assert [c.input for c in changes] == [
        "seed",
        "text",
        "width",
        "height",
        "resize_type.width",
        "cfg",
        "sampler_name",
    ]
    assert changes[0].old == 1 and changes[0].new == 42
    assert prompt["3"]["inputs"]["seed"] == 1, "the original prompt is not changed"


def test_model_inputs_accept_files_not_installed_yet(
    prompt: dict[str, Any], object_info: dict[str, Any]
) -> None:
    out, _ = apply_sets(prompt, object_info, ["Load Checkpoint.ckpt_name=sd_xl_base_1.0.safetensors"])
    assert out["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("KSampler.seed=abc", "whole number"),
        ("KSampler.seed=1.5", "whole number"),
        ("KSampler.steps=0", "smaller than the minimum 1"),
        ("KSampler.cfg=1000", "larger than the maximum 100"),
        ("KSampler.cfg=nan", "finite"),
        ("KSampler.sampler_name=eulr", "did you mean 'euler'"),
        ("KSampler.model=3", "linked from node 4 (Load Checkpoint)"),
        ("KSampler.sed=3", "did you mean 'seed'"),
        ("KSamplr.seed=3", "did you mean 'KSampler'"),
        ("Save.filename_prefix=z", "names 2 nodes"),
        ("seed=3", "NODE.INPUT=VALUE"),
        ("KSampler.seed", "NODE.INPUT=VALUE"),
    ],
)
def test_bad_values_are_explained(
    prompt: dict[str, Any], object_info: dict[str, Any], assignment: str, message: str
) -> None:
    with pytest.raises(ParameterError) as info:
        apply_sets(prompt, object_info, [assignment])
    assert message in str(info.value)
    assert info.value.status == 400


def test_booleans(object_info: dict[str, Any]) -> None:
    prompt = {
        "1": {
            "class_type": "InpaintModelConditioning",
            "_meta": {"title": "Inpaint"},
            "inputs": {"noise_mask": True},
        }
    }
    out, _ = apply_sets(prompt, object_info, ["Inpaint.noise_mask=off"])
    assert out["1"]["inputs"]["noise_mask"] is False
    with pytest.raises(ParameterError, match="true or false"):
        apply_sets(prompt, object_info, ["Inpaint.noise_mask=maybe"])


def test_parse_assignment_keeps_equals_in_the_value() -> None:
    assert parse_assignment("A.b=x=y") == ("A.b", "x=y")


def test_main_inputs_and_typed_values(prompt: dict[str, Any], object_info: dict[str, Any]) -> None:
    prompt["12"] = {"class_type": "LoadImage", "_meta": {"title": "Photo"}, "inputs": {"image": "a.png"}}
    found = {item["key"]: item for item in main_inputs(prompt, object_info)}
    assert found["6.text"]["kind"] == "prompt" and found["6.text"]["multiline"]
    assert found["3.seed"]["kind"] == "seed" and found["3.seed"]["max"] == 18446744073709551615
    assert found["5.width"]["kind"] == "size" and found["5.width"]["value"] == 512
    assert found["12.image"]["kind"] == "upload"
    assert "3.model" not in found  # linked inputs are not form fields
    out, changes = apply_values(
        prompt, object_info, {"3.seed": 7, "Positive Prompt.text": "a dog", "5.width": 640}
    )
    assert out["3"]["inputs"]["seed"] == 7 and out["6"]["inputs"]["text"] == "a dog"
    assert len(changes) == 3
    with pytest.raises(ParameterError, match="whole number"):
        apply_values(prompt, object_info, {"3.seed": "x"})
