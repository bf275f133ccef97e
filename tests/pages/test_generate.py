"""Built-in templates fill valid API graphs; the page queues them through `POST /api/generate`
(ComfyUI's validation errors are explained by the gateway: tests/comfyui/test_explain.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from comfyui_docker import generate as gen
from comfyui_docker.errors import InvalidInput


def test_demo_graph_matches_comfyui_sample_shape() -> None:
    g = gen.build("demo", {"width": "64", "height": "48", "color": "#ff0000", "batch": "2"})
    assert g["1"] == {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 48, "batch_size": 2, "color": 0xFF0000},
    }
    assert g["2"]["class_type"] == "SaveImage" and g["2"]["inputs"]["images"] == ["1", 0]


@pytest.mark.parametrize("tid", ["sd15", "sdxl", "flux_schnell"])
def test_model_templates_are_linked_graphs(tid: str) -> None:
    tmpl = gen.TEMPLATES[tid]
    g = gen.build(tid, {"model": "m.safetensors", "seed": "7", "prompt": "a cat"}, ["m.safetensors"])
    assert g["4"]["inputs"]["ckpt_name"] == "m.safetensors"
    assert g["3"]["inputs"]["seed"] == 7 and g["6"]["inputs"]["text"] == "a cat"
    for node in g.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in g, f"dangling link {value}"
    defaults = {f.name: f.default for f in tmpl.fields}
    assert g["3"]["inputs"]["steps"] == defaults["steps"]
    assert (g["5"]["class_type"] == "EmptySD3LatentImage") == (tid == "flux_schnell")


def test_random_seed_when_minus_one() -> None:
    seeds = {gen.build("sd15", {"model": "m"}, None)["3"]["inputs"]["seed"] for _ in range(5)}
    assert len(seeds) > 1 and all(s >= 0 for s in seeds)


def test_build_reports_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as info:
        gen.build(
            "sd15",
            {"model": "x.safetensors", "width": "abc", "steps": "0", "sampler": "nope"},
            ["m.safetensors"],
        )
    assert set(info.value.details["fields"]) == {"model", "width", "steps", "sampler"}
    with pytest.raises(InvalidInput):
        gen.build("nope", {})
    with pytest.raises(InvalidInput):
        gen.build("demo", {"color": "red"})


async def test_generate_page_lists_installed_models(client: httpx.AsyncClient, ws_root: Path) -> None:
    (ws_root / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    r = await client.get("/generate?template=sd15")
    assert "<option>mine.safetensors</option>" in r.text and "no-model" not in r.text
    frag = await client.get(
        "/generate?template=sdxl", headers={"HX-Request": "true", "HX-Target": "gen-form"}
    )
    assert frag.text.lstrip().startswith('<form id="gen-form"') and 'value="sdxl"' in frag.text
    empty = await client.get("/generate?template=flux_schnell")
    assert "mine.safetensors" in empty.text  # same folder
    demo = await client.get("/generate")
    assert 'name="color"' in demo.text


async def test_queue_rejects_bad_input_readably(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"
    r = await client.post(
        "/api/generate", json={"builtin": "sd15", "values": {"model": ""}, "client_id": "abc"}
    )
    body = r.json()["error"]
    assert r.status_code == 400 and "model" in body["details"]["fields"] and body["details"]["problems"]
    r = await client.post("/api/generate", json={"builtin": "demo", "client_id": "bad id!"})
    assert r.status_code == 400 and "client_id" in r.json()["error"]["message"]
    r = await client.post("/api/generate", json={"builtin": "nope"})
    assert r.status_code == 400 and "unknown template" in r.json()["error"]["message"]


async def test_queue_when_comfyui_is_down_is_503(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json={"builtin": "demo", "client_id": "abc"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "service_unavailable"


async def test_the_page_has_one_queue_route(client: httpx.AsyncClient) -> None:
    assert (await client.post("/generate/queue", json={"template": "demo"})).status_code in (404, 405)
    page = await client.get("/generate")
    assert 'data-relay="false"' in page.text  # no relay in this process: the page opens its own socket


async def test_official_templates_search_and_detail(client: httpx.AsyncClient, ws_root: Path) -> None:
    r = await client.get("/generate/official", params={"q": "z-image turbo"})
    assert r.status_code == 200 and 'data-name="image_z_image_turbo"' in r.text
    tagged = await client.get("/generate/official", params={"tag": "Image"})
    assert "template" in tagged.text and "No template matches" not in tagged.text
    none = await client.get("/generate/official", params={"q": "zzzz-no-such-thing"})
    assert "No template matches" in none.text
    (ws_root / "models" / "vae" / "ae.safetensors").write_bytes(b"x")
    d = await client.get("/generate/official/image_z_image_turbo")
    assert d.status_code == 200
    assert "vae/ae.safetensors" in d.text and "Install 2 missing models" in d.text
    assert "Inputs:" in d.text  # ComfyUI is not running here: the form says why inputs are absent
    wf = await client.get("/generate/official/image_z_image_turbo/workflow")
    assert wf.status_code == 200 and "nodes" in wf.json()
    bad = await client.get("/generate/official/no_such_template")
    assert bad.status_code == 404
