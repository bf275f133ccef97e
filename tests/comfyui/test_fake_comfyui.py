"""The fake ComfyUI against the real server's recorded answers (tests/data/comfyui-samples, COMFYUI.md §1-§2).

Every test runs against the fake; the `real` variants run the same checks against a real ComfyUI
when COMFYUI_ROOT points at one (marker real_comfyui; skipped with the reason otherwise).
Tests that need a fresh server (idle queue, empty history) come first in this module.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from comfy_samples import sample
from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import Comfy, http

JSON_CT = "application/json; charset=utf-8"
# Two checks are exact to the ComfyUI the samples were recorded from; another commit of 0.33.0
# (the v0.33.0 release the image pins has 849 classes and frontend 1.48.7) fails only those.
SAMPLED_AT = "the samples are of ComfyUI 0.33.0 at master 783545f (2026-08-22): is COMFYUI_ROOT that commit?"


def get_json(comfy: Comfy, path: str) -> Any:
    status, headers, body = http("GET", comfy.url + path)
    assert status == 200, (path, status, body[:300])
    assert headers["Content-Type"] == JSON_CT
    return json.loads(body)


def post_json(comfy: Comfy, path: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return http("POST", comfy.url + path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def normalise(comfy: Comfy, value: Any) -> Any:
    text = (
        json.dumps(value)
        .replace(str(comfy.root), "COMFYUI_ROOT")
        .replace(str(comfy.layout.vol), "/workspace/vol")
    )
    return json.loads(text)


# ---- fresh-server state (must run first) ------------------------------------------------------


def test_fresh_server_state_matches_samples(comfy: Comfy) -> None:
    assert get_json(comfy, "/queue") == sample("queue.json")
    assert get_json(comfy, "/prompt") == sample("prompt_get.json")
    assert get_json(comfy, "/history") == sample("history.json")
    assert get_json(comfy, "/api/jobs") == sample("api_jobs.json")
    assert get_json(comfy, "/embeddings") == sample("embeddings.json")
    assert get_json(comfy, "/features") == sample("features.json")


# ---- server state and listings ------------------------------------------------------------------


def test_system_stats_echoes_argv_verbatim(comfy: Comfy) -> None:
    stats = get_json(comfy, "/system_stats")
    ref = sample("system_stats.json")
    assert set(stats) == set(ref)
    assert set(stats["system"]) == set(ref["system"])
    assert set(stats["devices"][0]) == set(ref["devices"][0])
    assert stats["system"]["argv"] == ["main.py", *comfy.argv[2:]]
    assert stats["devices"][0]["type"] == "cpu" and stats["devices"][0]["index"] is None
    assert stats["system"]["comfy_package_versions"] == ref["system"]["comfy_package_versions"], SAMPLED_AT


def test_api_prefix_aliases_every_route_but_internal(comfy: Comfy) -> None:
    for path in ("/system_stats", "/queue", "/models", "/models/checkpoints", "/features", "/embeddings"):
        assert get_json(comfy, "/api" + path) == get_json(comfy, path) or path == "/system_stats"
    assert http("GET", comfy.url + "/internal/folder_paths")[0] == 200
    assert http("GET", comfy.url + "/api/internal/folder_paths")[0] == 404


def test_root_is_html_and_unknown_path_is_404(comfy: Comfy) -> None:
    status, headers, body = http("GET", comfy.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body.lower()
    assert http("GET", comfy.url + "/no/such/route")[0] == 404


def test_models_listing_matches_samples(comfy: Comfy) -> None:
    assert get_json(comfy, "/models") == sample("models.json")
    assert get_json(comfy, "/models/checkpoints") == sample("models_checkpoints.json")
    assert get_json(comfy, "/models/loras") == sample("models_loras.json")
    assert get_json(comfy, "/models/vae") == sample("models_vae.json")
    for folder in ("clip", "unet", "nope"):
        status, _headers, body = http("GET", f"{comfy.url}/models/{folder}")
        assert (status, body) == (404, b"")


def test_models_reflect_the_disk_without_restart(comfy: Comfy) -> None:
    deep = comfy.layout.vol / "models" / "checkpoints" / "sub" / "deep"
    deep.mkdir(parents=True)
    (deep / "nested.safetensors").write_bytes(b"x")
    (comfy.layout.vol / "models" / "checkpoints" / "readme.txt").write_text("not a model")
    (comfy.layout.vol / "models" / "checkpoints" / "UPPER.SAFETENSORS").write_bytes(b"x")
    try:
        assert get_json(comfy, "/models/checkpoints") == [
            "UPPER.SAFETENSORS",
            "sub/deep/nested.safetensors",
            "x.safetensors",
        ]
    finally:
        (deep / "nested.safetensors").unlink()
        (comfy.layout.vol / "models" / "checkpoints" / "readme.txt").unlink()
        (comfy.layout.vol / "models" / "checkpoints" / "UPPER.SAFETENSORS").unlink()


def test_object_info_single_classes_match_samples(comfy: Comfy) -> None:
    assert get_json(comfy, "/object_info/EmptyImage") == sample("object_info_single_response.json")
    for cls in (
        "CheckpointLoaderSimple",
        "ImageScale",
        "LoraLoader",
        "PreviewImage",
        "SaveImage",
        "VAELoader",
    ):
        assert get_json(comfy, f"/object_info/{cls}") == {cls: sample(f"object_info_{cls}.json")}, cls
    assert get_json(comfy, "/object_info/NoSuchNode") == {}


def test_full_object_info_has_every_class(comfy: Comfy) -> None:
    info = get_json(comfy, "/object_info")
    assert len(info) == 887, SAMPLED_AT
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["x.safetensors"]


# ---- POST /prompt rejections ---------------------------------------------------------------------

EMPTY = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}
SAVE = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}
REJECTIONS = {
    "err_unknown_class.json": {
        "prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": SAVE},
    },
    "err_missing_class_type.json": {"prompt": {"1": {"inputs": {}}}},
    "err_missing_input.json": {
        "prompt": {"1": EMPTY, "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    },
    "err_bad_combo.json": {
        "prompt": {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope.safetensors"}},
            "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
        }
    },
    "err_out_of_range.json": {
        "prompt": {"1": {**EMPTY, "inputs": {**EMPTY["inputs"], "width": 0}}, "2": SAVE}
    },
    "err_wrong_type.json": {
        "prompt": {"1": {**EMPTY, "inputs": {**EMPTY["inputs"], "width": "abc"}}, "2": SAVE}
    },
    "err_dangling_link.json": {
        "prompt": {"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0], "filename_prefix": "x"}}}
    },
    "err_no_output.json": {"prompt": {"1": EMPTY}},
    "err_empty_prompt.json": {"prompt": {}},
    "err_no_prompt_key.json": {"foo": 1},
}


def test_prompt_rejections_match_samples_exactly(comfy: Comfy) -> None:
    for name, body in REJECTIONS.items():
        status, headers, raw = post_json(comfy, "/prompt", body)
        assert status == 400, name
        assert headers["Content-Type"] == JSON_CT, name
        assert normalise(comfy, json.loads(raw)) == sample(name), name


def test_prompt_not_json_is_aiohttp_500(comfy: Comfy) -> None:
    status, headers, body = http("POST", comfy.url + "/prompt", b"this is not json")
    assert status == 500
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers.get("Connection") == "close"
    assert body == sample("err_not_json.txt")


def test_rejected_posts_consume_numbers(comfy: Comfy) -> None:
    graph = {"1": {**EMPTY, "inputs": {**EMPTY["inputs"], "color": 77}}, "2": SAVE}
    first = json.loads(post_json(comfy, "/prompt", {"prompt": graph})[2])["number"]
    post_json(comfy, "/prompt", {"prompt": {}})
    post_json(comfy, "/prompt", {"foo": 1})
    second = json.loads(post_json(comfy, "/prompt", {"prompt": graph})[2])["number"]
    assert second == first + 3


def test_prompt_id_must_be_canonical_uuid(comfy: Comfy) -> None:
    graph = {"1": EMPTY, "2": SAVE}
    status, _, body = post_json(comfy, "/prompt", {"prompt": graph, "prompt_id": "NOT-A-UUID"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_prompt_id"
    pid = str(uuid.uuid4())
    status, _, body = post_json(comfy, "/prompt", {"prompt": graph, "prompt_id": pid})
    assert status == 200 and json.loads(body)["prompt_id"] == pid


def test_jobs_paging_arguments_are_checked(comfy: Comfy) -> None:
    """Observed on a real ComfyUI 0.33: bad paging arguments are JSON 400s; a negative offset counts as 0."""
    for query, message in [
        ("limit=abc", "limit must be an integer"),
        ("limit=0", "limit must be a positive integer"),
        ("offset=x", "offset must be an integer"),
    ]:
        status, headers, body = http("GET", f"{comfy.url}/api/jobs?{query}")
        assert (status, json.loads(body)) == (400, {"error": message}), query
        assert headers["Content-Type"].startswith("application/json")
    assert get_json(comfy, "/api/jobs?offset=-3&limit=5")["pagination"]["offset"] == 0


def test_free_needs_a_body(comfy: Comfy) -> None:
    assert post_json(comfy, "/free", {"unload_models": True, "free_memory": True})[:1] == (200,)
    assert post_json(comfy, "/free", {})[0] == 200
    assert http("POST", comfy.url + "/free")[0] == 500


# ---- uploads and /view ---------------------------------------------------------------------------


def _multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    if file is not None:
        name, data = file
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(comfy: Comfy, fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[int, bytes]:
    body, headers = _multipart(fields, file)
    status, _, raw = http("POST", comfy.url + "/upload/image", body, headers)
    return status, raw


def test_upload_image_cases_match_samples(comfy: Comfy) -> None:
    a = png.encode(8, 8, 0xFF0000)
    b = png.encode(8, 8, 0x00FF00)
    c = png.encode(8, 8, 0x0000FF)
    cases = [
        ({}, ("pic.png", a), "up_first.json"),
        ({}, ("pic.png", a), "up_same_content_again.json"),
        ({}, ("pic.png", b), "up_diff_content_same_name.json"),
        ({"overwrite": "true"}, ("pic.png", c), "up_overwrite_true.json"),
        ({"subfolder": "sub/dir"}, ("pic.png", a), "up_subfolder.json"),
        ({"type": "temp"}, ("tmp.png", a), "up_type_temp.json"),
        ({"type": "output"}, ("outup.png", a), "up_type_output.json"),
        ({}, ("notes.txt", b"a: yaml\n"), "up_not_png.json"),
    ]
    for fields, file, name in cases:
        status, raw = upload(comfy, fields, file)
        assert (status, json.loads(raw)) == (200, sample(name)), name
    inputs = comfy.layout.input
    assert (inputs / "pic.png").read_bytes() == c  # overwritten in place
    assert (inputs / "pic (1).png").read_bytes() == b
    assert (inputs / "sub" / "dir" / "pic.png").read_bytes() == a
    assert (comfy.layout.output / "outup.png").read_bytes() == a


def test_upload_rejections_are_empty_400s(comfy: Comfy) -> None:
    assert upload(comfy, {"subfolder": "../../etc"}, ("pic.png", b"x")) == (400, b"")
    assert upload(comfy, {"foo": "bar"}, None) == (400, b"")


def test_view_serves_the_file_byte_identical(comfy: Comfy) -> None:
    data = png.encode(16, 8, 0x123456, {"prompt": "{}"})
    status, _ = upload(comfy, {"subfolder": "v"}, ("viewme.png", data))
    assert status == 200
    status, headers, body = http("GET", comfy.url + "/view?filename=viewme.png&type=input&subfolder=v")
    assert status == 200 and body == data
    ref_headers = sample("view_g1.headers").decode()
    for header in ("Content-Type", "Content-Disposition", "Etag", "Last-Modified", "Accept-Ranges"):
        assert header.lower() + ":" in ref_headers.lower()
        assert header in headers, header
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'filename="viewme.png"'
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_view_errors(comfy: Comfy) -> None:
    assert http("GET", comfy.url + "/view?filename=missing.png")[0] == 404
    assert http("GET", comfy.url + "/view")[0] == 404
    assert http("GET", comfy.url + "/view?filename=../../etc/passwd")[0] == 400


def test_load_image_combo_lists_top_level_input_images(comfy: Comfy) -> None:
    upload(comfy, {}, ("combo.png", png.encode(4, 4, 0)))
    spec = get_json(comfy, "/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"]
    assert "combo.png" in spec[0]
    assert all("/" not in name for name in spec[0])
    assert "notes.txt" not in spec[0]
    ref = sample("object_info_LoadImage.json")
    assert spec[1] == ref["input"]["required"]["image"][1]


# ---- the origin guard (ComfyUI without --enable-cors-header) ----------------------------------


def test_a_browser_origin_other_than_the_loopback_host_is_refused(comfy: Comfy) -> None:
    body = json.dumps({"prompt": {}}).encode()
    ct = {"Content-Type": "application/json"}
    host = f"127.0.0.1:{comfy.port}"
    # what a page served elsewhere (or a proxy keeping the browser's Origin) sends
    for origin in (
        "http://localhost:8080",
        "https://abc-8080.proxy.runpod.net",
        f"http://127.0.0.1:{comfy.port + 1}",
    ):
        status, _, raw = http("POST", comfy.url + "/prompt", body, {**ct, "Origin": origin})
        assert (status, raw) == (403, b""), origin
        status, _, _ = http("GET", comfy.url + "/system_stats", None, {"Origin": origin})
        assert status == 403, origin
    # the same host (ports compared only when both have one), or no Origin at all: let through
    for headers in ({"Origin": f"http://{host}"}, {"Origin": "http://127.0.0.1"}, {}):
        status, _, _ = http("POST", comfy.url + "/prompt", body, {**ct, **headers})
        assert status == 400, headers  # reached /prompt: the empty prompt is refused there
    status, _, _ = http("GET", comfy.url + "/system_stats", None, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _, _ = http("GET", comfy.url + "/system_stats", None, {"Sec-Fetch-Site": "same-origin"})
    assert status == 200
