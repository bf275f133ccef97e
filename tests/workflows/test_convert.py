"""Conversion rules on small hand-made graphs (one rule per test)."""

from __future__ import annotations

from typing import Any

import pytest

from comfyui_docker.workflows.convert import (
    UnknownNodeError,
    WorkflowError,
    convert,
    is_api_format,
    is_valid_connection,
    to_prompt,
)
from comfyui_docker.workflows.prompts import process_dynamic_prompt


class G:
    """A tiny UI-format graph builder (links are [id, from, slot, to, slot, type])."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.links: list[list[Any]] = []

    def node(
        self, nid: int, type_: str, values: Any = None, *, mode: int = 0, **extra: Any
    ) -> dict[str, Any]:
        node = {"id": nid, "type": type_, "mode": mode, "inputs": [], "outputs": [], "properties": {}}
        if values is not None:
            node["widgets_values"] = values
        node.update(extra)
        self.nodes.append(node)
        return node

    def link(
        self,
        src: dict[str, Any],
        out: int,
        dst: dict[str, Any],
        name: str,
        type_: str,
        *,
        widget: bool = False,
    ) -> None:
        lid = len(self.links) + 1
        while len(src["outputs"]) <= out:
            src["outputs"].append({"name": type_, "type": type_, "links": []})
        src["outputs"][out]["links"].append(lid)
        slot = {"name": name, "type": type_, "link": lid}
        if widget:
            slot["widget"] = {"name": name}
        dst["inputs"].append(slot)
        self.links.append([lid, src["id"], out, dst["id"], len(dst["inputs"]) - 1, type_])

    def json(self, **extra: Any) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "links": self.links,
            "last_node_id": max(n["id"] for n in self.nodes),
            **extra,
        }


def test_widget_values_are_named_in_definition_order(object_info: dict[str, Any]) -> None:
    g = G()
    ks = g.node(3, "KSampler", [42, "randomize", 20, 7.5, "euler", "karras", 1])
    assert ks
    prompt = convert(g.json(), object_info)
    inputs = prompt["3"]["inputs"]
    assert inputs == {
        "seed": 42,
        "steps": 20,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "karras",
        "denoise": 1,
    }
    assert prompt["3"]["class_type"] == "KSampler"
    assert prompt["3"]["_meta"] == {"title": "KSampler"}


def test_named_widget_values_and_defaults(object_info: dict[str, Any]) -> None:
    g = G()
    g.node(1, "EmptyImage", {"width": 64, "height": 48, "batch_size": 2, "color": 5}, title="Canvas")
    g.node(2, "EmptyImage", [32])  # too short: the rest are the definition's defaults
    prompt = convert(g.json(), object_info)
    assert prompt["1"] == {
        "inputs": {"width": 64, "height": 48, "batch_size": 2, "color": 5},
        "class_type": "EmptyImage",
        "_meta": {"title": "Canvas"},
    }
    assert prompt["2"]["inputs"] == {"width": 32, "height": 512, "batch_size": 1, "color": 0}


def test_links_reroutes_and_notes(object_info: dict[str, Any]) -> None:
    g = G()
    img = g.node(1, "EmptyImage", [64, 64, 1, 0])
    rr = g.node(2, "Reroute")
    save = g.node(3, "SaveImage", ["out"])
    g.node(4, "Note", ["hello"])
    g.node(5, "MarkdownNote", ["# hi"])
    g.link(img, 0, rr, "", "*")
    g.link(rr, 0, save, "images", "IMAGE")
    prompt = convert(g.json(), object_info)
    assert set(prompt) == {"1", "3"}
    assert prompt["3"]["inputs"] == {"filename_prefix": "out", "images": ["1", 0]}


def test_primitive_node_value_flows_into_the_widget(object_info: dict[str, Any]) -> None:
    g = G()
    prim = g.node(7, "PrimitiveNode", [1234, "fixed"])
    ks = g.node(3, "KSampler", [1, "randomize", 20, 8, "euler", "normal", 1])
    g.link(prim, 0, ks, "seed", "INT", widget=True)
    prompt = convert(g.json(), object_info)
    assert set(prompt) == {"3"}
    assert prompt["3"]["inputs"]["seed"] == 1234


def test_muted_node_is_dropped_with_its_links(object_info: dict[str, Any]) -> None:
    g = G()
    img = g.node(1, "EmptyImage", [64, 64, 1, 0], mode=2)
    save = g.node(2, "SaveImage", ["x"])
    g.link(img, 0, save, "images", "IMAGE")
    prompt = convert(g.json(), object_info)
    assert prompt == {
        "2": {"inputs": {"filename_prefix": "x"}, "class_type": "SaveImage", "_meta": {"title": "Save Image"}}
    }


def test_bypassed_node_passes_the_matching_input_through(object_info: dict[str, Any]) -> None:
    g = G()
    img = g.node(1, "EmptyImage", [64, 64, 1, 0])
    inv = g.node(2, "ImageInvert", [], mode=4)
    save = g.node(3, "SaveImage", ["x"])
    g.link(img, 0, inv, "image", "IMAGE")
    g.link(inv, 0, save, "images", "IMAGE")
    prompt = convert(g.json(), object_info)
    assert set(prompt) == {"1", "3"}
    assert prompt["3"]["inputs"]["images"] == ["1", 0]


def test_bypass_prefers_the_first_input_of_the_same_type(object_info: dict[str, Any]) -> None:
    g = G()
    ckpt = g.node(1, "CheckpointLoaderSimple", ["m.safetensors"])
    enc = g.node(2, "CLIPTextEncode", ["a cat"])
    lora = g.node(4, "LoraLoader", ["l.safetensors", 1, 1], mode=4)
    ks = g.node(5, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1])
    g.link(ckpt, 0, lora, "model", "MODEL")
    g.link(ckpt, 1, lora, "clip", "CLIP")
    g.link(lora, 1, enc, "clip", "CLIP")  # the bypassed LoRA's CLIP output: its CLIP input
    g.link(lora, 0, ks, "model", "MODEL")
    prompt = convert(g.json(), object_info)
    assert prompt["2"]["inputs"]["clip"] == ["1", 1]
    assert prompt["5"]["inputs"]["model"] == ["1", 0]
    assert "4" not in prompt


def test_bypass_without_a_matching_input_leaves_the_input_out(object_info: dict[str, Any]) -> None:
    g = G()
    ckpt = g.node(1, "CheckpointLoaderSimple", ["m.safetensors"], mode=4)
    enc = g.node(2, "CLIPTextEncode", ["a cat"])
    g.link(ckpt, 1, enc, "clip", "CLIP")
    prompt = convert(g.json(), object_info)
    assert prompt["2"]["inputs"] == {"text": "a cat"}


def _subgraph(
    sid: str,
    nodes: list[dict[str, Any]],
    links: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {"id": sid, "name": sid, "nodes": nodes, "links": links, "inputs": inputs, "outputs": outputs}


def test_subgraph_is_flattened_with_compound_ids(object_info: dict[str, Any]) -> None:
    inner_invert = {
        "id": 1,
        "type": "ImageInvert",
        "mode": 0,
        "inputs": [{"name": "image", "type": "IMAGE", "link": 10}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [11]}],
    }
    sub = _subgraph(
        "sg-1",
        [inner_invert],
        [
            {"id": 10, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
            {"id": 11, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
        [{"name": "image", "type": "IMAGE", "linkIds": [10]}],
        [{"name": "IMAGE", "type": "IMAGE", "linkIds": [11]}],
    )
    g = G()
    img = g.node(1, "EmptyImage", [8, 8, 1, 0])
    inst = g.node(5, "sg-1")
    save = g.node(6, "SaveImage", ["x"])
    g.link(img, 0, inst, "image", "IMAGE")
    g.link(inst, 0, save, "images", "IMAGE")
    prompt = convert(g.json(definitions={"subgraphs": [sub]}), object_info)
    # inner node 1 clashes with root node 1: renumbered after last_node_id (6), as the editor does
    assert set(prompt) == {"1", "5:7", "6"}
    assert prompt["5:7"]["inputs"]["image"] == ["1", 0]
    assert prompt["6"]["inputs"]["images"] == ["5:7", 0]


def _size_subgraph(sid: str, inner_id: int) -> dict[str, Any]:
    inner = {
        "id": inner_id,
        "type": "EmptyImage",
        "mode": 0,
        "inputs": [{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 20}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [21]}],
        "widgets_values": [16, 16, 1, 0],
    }
    return _subgraph(
        sid,
        [inner],
        [
            {
                "id": 20,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": inner_id,
                "target_slot": 0,
                "type": "INT",
            },
            {
                "id": 21,
                "origin_id": inner_id,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 0,
                "type": "IMAGE",
            },
        ],
        [{"name": "width", "type": "INT", "linkIds": [20]}],
        [{"name": "IMAGE", "type": "IMAGE", "linkIds": [21]}],
    )


def test_promoted_widget_value_of_the_instance(object_info: dict[str, Any]) -> None:
    g = G()
    legacy = g.node(
        2, "sg-w", [320], inputs=[{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": None}]
    )
    g.node(3, "sg-w", [], properties={"proxyWidgets": [["50", "width"]]})
    save = g.node(4, "SaveImage", ["x"])
    g.link(legacy, 0, save, "images", "IMAGE")
    prompt = convert(g.json(definitions={"subgraphs": [_size_subgraph("sg-w", 50)]}), object_info)
    assert prompt["2:50"]["inputs"]["width"] == 320  # saved on the instance (older editors)
    assert prompt["3:50"]["inputs"]["width"] == 16  # promoted view of the inner widget


def test_linked_subgraph_input_continues_outside(object_info: dict[str, Any]) -> None:
    g = G()
    prim = g.node(1, "PrimitiveInt", [99, "fixed"])
    inst = g.node(2, "sg-w")
    save = g.node(3, "SaveImage", ["x"])
    g.link(prim, 0, inst, "width", "INT", widget=True)
    g.link(inst, 0, save, "images", "IMAGE")
    prompt = convert(g.json(definitions={"subgraphs": [_size_subgraph("sg-w", 50)]}), object_info)
    assert prompt["2:50"]["inputs"]["width"] == ["1", 0]
    assert prompt["1"]["inputs"] == {"value": 99}


def test_nested_subgraphs_get_paths_and_bypassed_instances_drop_their_nodes(
    object_info: dict[str, Any],
) -> None:
    outer = _subgraph(
        "outer",
        [
            {
                "id": 30,
                "type": "sg-w",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [31]}],
            }
        ],
        [{"id": 31, "origin_id": 30, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}],
        [],
        [{"name": "IMAGE", "type": "IMAGE", "linkIds": [31]}],
    )
    g = G()
    inst = g.node(8, "outer")
    g.node(9, "outer", mode=4)
    save = g.node(10, "SaveImage", ["x"])
    g.link(inst, 0, save, "images", "IMAGE")
    wf = g.json(definitions={"subgraphs": [outer, _size_subgraph("sg-w", 50)]})
    prompt = convert(wf, object_info)
    assert set(prompt) == {"8:30:50", "10"}
    assert prompt["10"]["inputs"]["images"] == ["8:30:50", 0]


def test_unknown_node_is_a_clear_error(object_info: dict[str, Any]) -> None:
    g = G()
    g.node(4, "FancyUpscale", [2], title="Upscale x2", properties={"cnr_id": "comfyui-fancy"})
    g.node(5, "AlsoMissing", [], mode=2)  # muted: never sent, so no error for it
    with pytest.raises(UnknownNodeError) as info:
        convert(g.json(), object_info)
    err = info.value
    assert (err.node_id, err.title, err.class_type, err.pack) == (
        "4",
        "Upscale x2",
        "FancyUpscale",
        "comfyui-fancy",
    )
    assert "comfyui-fancy" in str(err) and "Upscale x2" in str(err)
    assert err.status == 400 and err.code == "unknown_node_type"
    kept = convert(g.json(), object_info, unknown="keep")
    assert kept == {"4": {"inputs": {"UNKNOWN": 2}, "_meta": {"title": "Upscale x2"}}}


@pytest.mark.parametrize(
    "bad",
    [[], {"nodes": "x"}, {"links": []}, {"nodes": [{"type": "EmptyImage"}], "links": []}],
)
def test_malformed_workflows_are_refused(bad: Any, object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError):
        convert(bad, object_info)


def test_a_link_loop_is_an_error_not_a_hang(object_info: dict[str, Any]) -> None:
    g = G()
    a = g.node(1, "Reroute")
    b = g.node(2, "Reroute")
    save = g.node(3, "SaveImage", ["x"])
    g.link(a, 0, b, "", "*")
    g.link(b, 0, a, "", "*")
    g.link(b, 0, save, "images", "IMAGE")
    with pytest.raises(WorkflowError, match="loop"):
        convert(g.json(), object_info)


def test_dynamic_prompts_in_text_widgets(object_info: dict[str, Any]) -> None:
    g = G()
    g.node(1, "CLIPTextEncode", ["a {cat} on https://example.com /* note */"])
    g.node(2, "SaveImage", ["run/{x}"])  # not a dynamic-prompt widget: kept as written
    prompt = convert(g.json(), object_info)
    assert prompt["1"]["inputs"]["text"] == "a cat on https:"  # "//" starts a comment
    assert prompt["2"]["inputs"]["filename_prefix"] == "run/{x}"


def test_process_dynamic_prompt_choices() -> None:
    assert process_dynamic_prompt("{a|b|c}", lambda n: 2) == "c"
    assert process_dynamic_prompt("x {a|{b|c}} y", lambda n: n - 1) == "x c y"
    assert process_dynamic_prompt(r"\{a|b\}", lambda n: 0) == r"\{a|b\}"
    assert process_dynamic_prompt("keep // gone\nnext") == "keep \nnext"


def test_api_format_detection_and_passthrough() -> None:
    api = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    assert is_api_format(api)
    assert is_api_format({"prompt": api})
    assert not is_api_format({"nodes": [], "links": []})
    assert to_prompt({"prompt": api}, {}) == api


def test_type_compatibility() -> None:
    assert is_valid_connection("IMAGE", "image")
    assert is_valid_connection("*", "MODEL")
    assert is_valid_connection("IMAGE,MASK", "MASK")
    assert not is_valid_connection("IMAGE", "LATENT")


def test_set_and_get_nodes_are_named_wires(object_info: dict[str, Any]) -> None:
    g = G()
    img = g.node(1, "EmptyImage", [8, 8, 1, 0])
    setter = g.node(2, "SetNode", ["canvas"])
    getter = g.node(3, "GetNode", ["canvas"])
    other = g.node(5, "GetNode", ["nothing"])
    save = g.node(4, "SaveImage", ["x"])
    save2 = g.node(6, "SaveImage", ["y"])
    g.link(img, 0, setter, "IMAGE", "IMAGE")
    g.link(getter, 0, save, "images", "IMAGE")
    g.link(other, 0, save2, "images", "IMAGE")
    prompt = convert(g.json(), object_info)
    assert set(prompt) == {"1", "4", "6"}
    assert prompt["4"]["inputs"]["images"] == ["1", 0]
    assert "images" not in prompt["6"]["inputs"]


def test_mutated_templates_fail_cleanly(object_info: dict[str, Any]) -> None:
    """Random damage to real templates gives a result or a 400-class error, never a crash."""
    import copy
    import random

    from comfyui_docker.errors import AppError
    from comfyui_docker.workflows.refs import model_refs
    from comfyui_docker.workflows.templates import TemplateLibrary

    lib = TemplateLibrary()
    names = sorted(lib.infos())
    rnd = random.Random(8)
    junk: list[Any] = [None, "x", 3, -1, [], {}, [None], {"a": 1}, 1.5, True, "-10"]

    def damage(item: Any, depth: int = 0) -> None:
        if isinstance(item, dict) and item:
            key = rnd.choice(list(item))
            if rnd.random() < 0.5 or depth > 5:
                item[key] = rnd.choice(junk)
            else:
                damage(item[key], depth + 1)
        elif isinstance(item, list) and item:
            i = rnd.randrange(len(item))
            if rnd.random() < 0.5 or depth > 5:
                item[i] = rnd.choice(junk)
            else:
                damage(item[i], depth + 1)

    for _ in range(200):
        workflow = copy.deepcopy(lib.load(rnd.choice(names)))
        for _ in range(rnd.randint(1, 4)):
            damage(workflow)
        for call in (convert, model_refs):
            try:
                call(workflow, object_info)
            except AppError as exc:
                assert exc.status == 400, exc
