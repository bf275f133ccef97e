"""ComfyUI's refusals and failures as readable lines, on the bodies a real ComfyUI 0.33 sent."""

from __future__ import annotations

import json

import pytest

from comfy_samples import SAMPLES, sample
from comfyui_docker.comfyui import PromptRejected
from comfyui_docker.comfyui.errors import scrub
from comfyui_docker.comfyui.explain import execution_failure, interruption, node_label, rejection
from comfyui_docker.model_inputs import ModelRef

ERROR_SAMPLES = sorted(p.name for p in SAMPLES.glob("err_*.json"))

#: The graphs behind the samples, as far as the lines name their nodes (ids and classes).
PROMPT = {
    "1": {"class_type": "EmptyImage", "_meta": {"title": "Canvas"}, "inputs": {}},
    "2": {"class_type": "SaveImage", "inputs": {}},
}


@pytest.mark.parametrize("name", ERROR_SAMPLES)
def test_every_sampled_refusal_is_readable(name: str) -> None:
    exc = rejection(sample(name), PROMPT)
    assert isinstance(exc, PromptRejected) and exc.status == 400 and exc.code == "prompt_rejected"
    assert exc.problems and all(isinstance(x, str) and len(x) > 10 for x in exc.problems)
    text = json.dumps(exc.to_dict())
    assert "Traceback" not in text and 'File \\"' not in text and "/workspace" not in text
    assert exc.message.startswith("ComfyUI rejected the prompt: ")


@pytest.mark.parametrize(
    ("name", "line"),
    [
        (
            "err_bad_combo.json",
            "node 1 (Canvas, EmptyImage) input 'ckpt_name': the model 'nope.safetensors' is not "
            "installed (expected in models/checkpoints)",
        ),
        ("err_missing_input.json", "node 2 (SaveImage) input 'images': is not connected and has no value"),
        ("err_out_of_range.json", "node 1 (Canvas, EmptyImage) input 'width': value 0 smaller than min of 1"),
        (
            "err_wrong_type.json",
            "node 1 (Canvas, EmptyImage) input 'width': got 'abc', which has the wrong type "
            "(failed to convert an input value to a INT value)",
        ),
        ("err_dangling_link.json", "node 2 (SaveImage): links to node '99', which is not in the workflow"),
        (
            "err_no_output.json",
            "the workflow has no output node (such as Save Image), so it would produce nothing",
        ),
        ("err_no_prompt_key.json", "no workflow was sent to ComfyUI"),
    ],
)
def test_lines_name_node_title_class_and_input(name: str, line: str) -> None:
    assert rejection(sample(name), PROMPT).problems == [line]


def test_a_choice_that_is_no_model_lists_what_is_offered() -> None:
    item = {
        "type": "value_not_in_list",
        "message": "Value not in list",
        "details": "upscale_method: 'bogus' not in [...]",
        "extra_info": {
            "input_name": "upscale_method",
            "input_config": [["nearest-exact", "bilinear", "area", "bicubic", "lanczos"], {}],
            "received_value": "bogus",
        },
    }
    body = {"error": {"type": "prompt_outputs_failed_validation"}, "node_errors": {"2": {"errors": [item]}}}
    prompt = {"2": {"class_type": "ImageScale", "_meta": {"title": "Scale it"}, "inputs": {}}}
    exc = rejection(body, prompt)
    assert exc.problems == [
        "node 2 (Scale it, ImageScale) input 'upscale_method': 'bogus' is not one of the choices ComfyUI "
        "offers (offered: nearest-exact, bilinear, area, bicubic, lanczos)"
    ]
    assert exc.missing == [] and exc.hint == "fix the inputs listed in details.problems"


def test_unknown_class_says_what_to_install() -> None:
    (line,) = rejection(sample("err_unknown_class.json"), {}).problems
    assert line.startswith("node 1 (NoSuchNode): the node type 'NoSuchNode' is not installed in ComfyUI")
    assert "restart ComfyUI" in line


def test_a_missing_model_is_named_with_its_folder() -> None:
    body = sample("err_bad_combo.json")  # the sample's node 1 is a CheckpointLoaderSimple
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope.safetensors"}}}
    exc = rejection(body, prompt)
    assert exc.missing == [
        ModelRef(
            "checkpoints",
            "nope.safetensors",
            node_id="1",
            class_type="CheckpointLoaderSimple",
            input="ckpt_name",
        )
    ]
    assert exc.problems == [
        "node 1 (CheckpointLoaderSimple) input 'ckpt_name': the model 'nope.safetensors' is not installed "
        "(expected in models/checkpoints)"
    ]
    assert exc.hint == "install the missing model files, then queue again"
    assert exc.details["missing"][0]["folder"] == "checkpoints"
    # the class comes from ComfyUI's answer when the prompt does not have the node
    assert rejection(body, {}).missing[0].class_type == "CheckpointLoaderSimple"


def test_anything_else_is_still_an_answer() -> None:
    assert rejection("garbage", {}).problems == ["ComfyUI refused the prompt without saying why"]
    assert rejection(None, {}).message.startswith("ComfyUI rejected the prompt")
    many = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {
            "1": {
                "class_type": "A",
                "errors": [{"type": "x", "message": "first"}, {"type": "y", "message": "second"}],
            }
        },
    }
    exc = rejection(many, {})
    assert exc.problems == ["node 1 (A): first", "node 1 (A): second"]
    assert exc.message.endswith("(and 1 more)")


def test_scrub_drops_tracebacks_and_exception_texts_at_any_depth() -> None:
    body = sample("err_dangling_link.json")
    assert "traceback" in json.dumps(body)
    cleaned = scrub(body)
    assert "traceback" not in json.dumps(cleaned) and "exception_message" not in json.dumps(cleaned)
    assert scrub({"a": [{"traceback": ["x"], "keep": 1}]}) == {"a": [{"keep": 1}]}


def test_execution_failures_and_interruptions() -> None:
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load it"}, "inputs": {}}}
    data = {
        "node_id": "1",
        "node_type": "CheckpointLoaderSimple",
        "exception_type": "safetensors_rust.SafetensorError",
        "exception_message": "Error while deserializing header: header too large",
        "traceback": ['  File "/opt/ComfyUI/execution.py", line 545'],
    }
    text = execution_failure(data, prompt)
    assert text.startswith(
        "node 1 (Load it, CheckpointLoaderSimple) failed: SafetensorError: "
        "Error while deserializing header: header too large"
    )
    assert "-> the model file is not a valid safetensors file" in text and "/opt" not in text
    detect = execution_failure(
        {"node_id": "1", "exception_message": "Could not detect model type of: /workspace/vol/x.safetensors"},
        prompt,
    )
    assert "x.safetensors" in detect and "/workspace" not in detect and "right models folder" in detect
    assert (
        interruption({"node_id": "1"}, prompt)
        == "the run was interrupted at node 1 (Load it, CheckpointLoaderSimple)"
    )
    assert interruption({}, prompt) == "the run was interrupted"
    assert node_label({}, "7", "KSampler") == "node 7 (KSampler)"
