"""Invariants of the shipped catalog."""

from __future__ import annotations

from urllib.parse import urlsplit

from comfyui_docker.catalog import load_catalog
from comfyui_docker.catalog.entries import check_path, check_url
from comfyui_docker.model_paths import MODEL_FOLDERS


def test_shipped_catalog_loads_without_problems() -> None:
    cat = load_catalog()
    assert cat.problems == []
    assert len(cat.presets) >= 10


def test_design_document_ids_and_families_are_present() -> None:
    ids = set(load_catalog().presets)
    assert {"WAN_22_5B_TIV2", "LTX_VIDEO_T2V"} <= ids
    assert {"WAN_22_14B_T2V", "WAN_22_14B_I2V", "SD15_BASE", "SDXL_BASE", "FLUX_SCHNELL"} <= ids
    assert {"QWEN_IMAGE", "ACE_STEP_V1", "STABLE_AUDIO_OPEN"} <= ids
    types = {p.type for p in load_catalog().presets.values()}
    assert types == {"video", "image", "audio"}


def test_every_file_is_a_resolve_url_into_a_canonical_folder() -> None:
    for preset in load_catalog().presets.values():
        assert preset.name and preset.description
        assert preset.requirements.vram_gb and preset.requirements.disk_gb
        for f in preset.all_files():
            assert check_url(f.url) is None and check_path(f.path) is None
            parts = urlsplit(f.url)
            assert parts.scheme == "https" and parts.hostname == "huggingface.co"
            assert "/resolve/" in parts.path and not parts.query
            assert f.folder in MODEL_FOLDERS
            # the file name comes from path; for these repositories it equals the URL's last part
            assert parts.path.rsplit("/", 1)[-1] == f.filename
            assert f.sha256 is None or len(f.sha256) == 64


def test_same_path_means_same_url_across_presets() -> None:
    seen: dict[str, str] = {}
    for preset in load_catalog().presets.values():
        for f in preset.all_files():
            assert seen.setdefault(f.path, f.url) == f.url, f.path


def test_variants_and_gguf() -> None:
    cat = load_catalog()
    wan = cat.presets["WAN_22_5B_TIV2"]
    assert wan.default_variant in wan.variants
    assert any(name.startswith("gguf") for name in wan.variants)
    for pid in ("WAN_22_14B_T2V", "WAN_22_14B_I2V"):
        assert "gguf_q4" in cat.presets[pid].variants
    assert all(f.filename.endswith(".gguf") for f in wan.variants["gguf_q4"].files)


def test_shared_files_are_shared() -> None:
    cat = load_catalog()
    t2v = {f.path for f in cat.presets["WAN_22_14B_T2V"].files_for()}
    i2v = {f.path for f in cat.presets["WAN_22_14B_I2V"].files_for()}
    assert "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors" in t2v & i2v
