"""Every official template converts or names its missing node classes; declared models are installable."""

from __future__ import annotations

from typing import Any

import pytest

from comfyui_docker.errors import NotFound
from comfyui_docker.model_paths import MODEL_FOLDERS
from comfyui_docker.workflows.convert import UnknownNodeError, convert
from comfyui_docker.workflows.templates import TemplateLibrary, direct_url

LIBRARY = TemplateLibrary()
NAMES = sorted(LIBRARY.infos())

#: Upstream data problems in comfyui-workflow-templates-json 0.1.50, found by this test: HF page
#: URLs (`/blob/`) where a download URL (`/resolve/`) belongs. Presets fix them (direct_url).
KNOWN_BAD_URLS = {"hidream_e1_full": 5}


def test_package_ships_the_templates() -> None:
    assert len(NAMES) >= 500
    info = LIBRARY.get("video_wan2_2_14B_i2v")
    assert info.title and info.category and info.tags
    assert LIBRARY.search("wan 2.2", tag="Image to Video")
    tagged = LIBRARY.search(tag="video")  # tags match case-insensitively
    assert tagged and all("Video" in i.tags for i in tagged)
    assert len(tagged) < len(NAMES)
    assert "Video" in LIBRARY.tags()


def test_unknown_template_suggests_close_names() -> None:
    with pytest.raises(NotFound) as info:
        LIBRARY.get("video_wan2_2_14B_i2vv")
    assert "video_wan2_2_14B_i2v" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_template_converts_or_names_the_missing_node(name: str, object_info: dict[str, Any]) -> None:
    workflow = LIBRARY.load(name)
    try:
        prompt = convert(workflow, object_info)
    except UnknownNodeError as exc:
        for missing in exc.missing:
            assert missing.class_type not in object_info
            assert missing.node_id and missing.class_type in str(exc)
            assert missing.node_id in str(exc)
        assert exc.hint and "install" in exc.hint
        assert exc.to_dict()["details"]["nodes"][0]["class_type"] == exc.class_type
        return
    assert prompt, "a template with no executable node"
    for node_id, node in prompt.items():
        assert node["class_type"] in object_info, node_id
        assert "title" in node["_meta"]
        for value in node["inputs"].values():
            if isinstance(value, list):  # a link: to a node of the prompt, to an existing output
                origin = prompt[value[0]]
                assert 0 <= value[1] < len(object_info[origin["class_type"]]["output"])


def test_three_templates_need_custom_nodes(object_info: dict[str, Any]) -> None:
    failing = {}
    for name in NAMES:
        try:
            convert(LIBRARY.load(name), object_info)
        except UnknownNodeError as exc:
            failing[name] = {(m.class_type, m.pack) for m in exc.missing}
    assert failing == {
        "template_rob_realistic_2k_images_quick_variations": {
            ("ImageRemoveAlpha+", "comfyui_essentials"),
            ("AILab_QwenVL", "comfyui-qwenvl"),
        },
        "templates_rob_realistic_2k_images_quick_variations.app": {
            ("ImageRemoveAlpha+", "comfyui_essentials"),
            ("AILab_QwenVL", "comfyui-qwenvl"),
        },
        "templates_mjm_looped_restyler": {("GetImageSizeAndCount", "comfyui-kjnodes")},
    }


def test_declared_folders_are_canonical_and_urls_resolve() -> None:
    problems: dict[str, list[str]] = {}
    for name in NAMES:
        found = LIBRARY.problems(name)
        if found:
            problems[name] = found
    folder_problems = [p for ps in problems.values() for p in ps if "folder" in p]
    assert folder_problems == [], folder_problems
    assert {name: len(found) for name, found in problems.items()} == KNOWN_BAD_URLS


def test_presets_from_templates() -> None:
    with_models = 0
    for name in NAMES:
        preset = LIBRARY.preset(name)
        if preset is None:
            assert not any(f["url"] for f in LIBRARY.files(name))
            continue
        with_models += 1
        assert preset.id == f"template:{name}"
        for spec in preset.files:
            assert spec.folder in MODEL_FOLDERS, (name, spec.path)
            assert "/resolve/" in spec.url, (name, spec.url)
            assert spec.url.startswith("https://"), (name, spec.url)
    assert with_models >= 200


def test_direct_url_fixes_blob_pages_only() -> None:
    blob = "https://huggingface.co/org/repo/blob/main/a/b.safetensors"
    assert direct_url(blob) == "https://huggingface.co/org/repo/resolve/main/a/b.safetensors"
    other = "https://example.com/blob/x.safetensors"
    assert direct_url(other) == other


def test_preset_files_of_a_template() -> None:
    files = LIBRARY.files("Image_capybara_v0_1_image_edit")
    assert {f["path"] for f in files} == {
        "diffusion_models/capybara_v0.1.safetensors",
        "text_encoders/qwen_2.5_vl_7b.safetensors",
        "text_encoders/byt5_small_glyphxl_fp16.safetensors",
        "vae/hunyuanvideo15_vae_fp16.safetensors",
        "clip_vision/sigclip_vision_patch14_384.safetensors",
    }
    assert all(f["url"].startswith("https://huggingface.co/") for f in files)
