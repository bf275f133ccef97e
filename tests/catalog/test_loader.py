"""Catalog parsing: sizes, variants, and every malformed entry skipped with file:line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyui_docker.catalog import load_catalog, parse_size, parse_text

GOOD = """\
presets:
  GOOD_ONE:
    name: Good
    type: image
    category: text-to-image
    tags: [a, b]
    requirements: {vram_gb: 8, disk_gb: 3}
    files:
      - path: checkpoints/good.safetensors
        url: https://huggingface.co/org/repo/resolve/main/good.safetensors
        size: 1234
        sha256: %s
"""


def text_with(entry: str) -> str:
    return GOOD % ("a" * 64) + entry


def test_parse_size_forms() -> None:
    assert parse_size(1234) == (1234, True)
    assert parse_size("1234") == (1234, True)
    assert parse_size("4.8GB") == (4_800_000_000, False)
    assert parse_size("512 MiB") == (512 * 1024**2, False)
    assert parse_size("~2GB") == (2_000_000_000, False)
    for bad in ("lots", "4.8XB", -1, 1.5, True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_good_entry_loads_with_all_fields() -> None:
    cat = parse_text(text_with(""))
    assert cat.problems == []
    p = cat.presets["GOOD_ONE"]
    assert p.tags == ("a", "b")
    assert p.requirements.vram_gb == 8
    (f,) = p.files_for()
    assert f.folder == "checkpoints" and f.filename == "good.safetensors"
    assert f.size == 1234 and f.size_exact and f.sha256 == "a" * 64
    assert f.host == "huggingface.co"
    assert p.source.endswith(":3")


def test_wrong_folder_names_line_and_suggestion() -> None:
    entry = """\
  BAD_FOLDER:
    name: Bad
    type: image
    files:
      - path: checkpoints/ok.safetensors
        url: https://example.com/ok.safetensors
      - path: checkpoints/ok2.safetensors
        url: https://example.com/ok2.safetensors
      - path: lora/style.safetensors
        url: https://example.com/style.safetensors
"""
    text = text_with(entry)
    cat = parse_text(text, "presets.yaml")
    assert "GOOD_ONE" in cat.presets and "BAD_FOLDER" not in cat.presets
    (prob,) = cat.problems
    line = text.splitlines().index("      - path: lora/style.safetensors") + 1
    assert str(prob).startswith(
        f"presets.yaml:{line} files[2].path: 'lora' is not a ComfyUI model folder; did you mean 'loras'?"
    )
    assert prob.preset_id == "BAD_FOLDER"


@pytest.mark.parametrize(
    ("file_lines", "field", "fragment"),
    [
        (
            "      - path: loras/x.safetensors\n        url: https://huggingface.co/o/r/blob/main/x.safetensors\n",
            "files[0].url",
            "/resolve/",
        ),
        ("      - path: ../../etc/passwd\n        url: https://example.com/x\n", "files[0].path", "leaves"),
        (
            "      - path: /abs/x.safetensors\n        url: https://example.com/x\n",
            "files[0].path",
            "relative",
        ),
        (
            "      - path: x.safetensors\n        url: https://example.com/x\n",
            "files[0].path",
            "needs a folder",
        ),
        ("      - path: loras/x.safetensors\n        url: ftp://example.com/x\n", "files[0].url", "http"),
        (
            "      - path: loras/x.safetensors\n        url: https://e.com/x\n        size: lots\n",
            "files[0].size",
            "not a size",
        ),
        (
            "      - path: loras/x.safetensors\n        url: https://e.com/x\n        sha256: abc\n",
            "files[0].sha256",
            "64 hex",
        ),
        ("      - path: loras/x.safetensors\n", "files[0].url", "missing"),
    ],
)
def test_malformed_file_entries_are_skipped(file_lines: str, field: str, fragment: str) -> None:
    entry = "  BROKEN:\n    name: Broken\n    type: image\n    files:\n" + file_lines
    cat = parse_text(text_with(entry))
    assert "BROKEN" not in cat.presets and "GOOD_ONE" in cat.presets
    (prob,) = [p for p in cat.problems if p.level == "error"]
    assert prob.field == field, str(prob)
    assert fragment in prob.message
    assert prob.line > 12


def test_duplicate_ids_bad_ids_bad_type_and_unknown_variant() -> None:
    entry = """\
  GOOD_ONE:
    name: Again
    type: image
    files: [{path: vae/v.safetensors, url: "https://e.com/v"}]
  lower_case:
    name: x
    type: image
    files: [{path: vae/v.safetensors, url: "https://e.com/v"}]
  BAD_TYPE:
    name: x
    type: movie
    files: [{path: vae/v.safetensors, url: "https://e.com/v"}]
  BAD_VARIANT:
    name: x
    type: video
    default_variant: fp4
    variants:
      fp8: {files: [{path: vae/v.safetensors, url: "https://e.com/v"}]}
"""
    cat = parse_text(text_with(entry))
    assert set(cat.presets) == {"GOOD_ONE"}
    assert cat.presets["GOOD_ONE"].name == "Good"  # the first definition wins
    messages = [str(p) for p in cat.problems]
    assert any("duplicate id (first defined at line 2)" in m for m in messages)
    assert any("upper case" in m for m in messages)
    assert any("'movie' must be one of" in m for m in messages)
    assert any("default_variant: 'fp4' is not one of the variants (fp8)" in m for m in messages)


def test_variants_add_to_shared_files() -> None:
    text = """\
presets:
  V:
    name: V
    type: video
    files: [{path: vae/shared.safetensors, url: "https://e.com/s", size: 10}]
    variants:
      fp16: {files: [{path: diffusion_models/a.safetensors, url: "https://e.com/a", size: 100}]}
      gguf_q4: {files: [{path: diffusion_models/a.gguf, url: "https://e.com/g", size: "1KB"}]}
"""
    p = parse_text(text).presets["V"]
    assert p.default_variant == "fp16"
    assert [f.path for f in p.files_for()] == ["vae/shared.safetensors", "diffusion_models/a.safetensors"]
    assert [f.path for f in p.files_for("gguf_q4")][1] == "diffusion_models/a.gguf"
    assert p.total_size("gguf_q4") == 1010


def test_broken_yaml_is_one_problem_not_an_exception(tmp_path: Path) -> None:
    user = tmp_path / "presets.yaml"
    user.write_text("presets:\n  X: [unclosed\n", encoding="utf-8")
    cat = load_catalog(user)
    assert "WAN_22_5B_TIV2" in cat.presets  # the shipped catalog still loads
    (prob,) = cat.problems
    assert str(prob).startswith(f"{user}:") and "not valid YAML" in prob.message


def test_user_catalog_overrides_and_adds(tmp_path: Path) -> None:
    user = tmp_path / "presets.yaml"
    user.write_text(
        """\
presets:
  SD15_BASE:
    name: My SD 1.5
    type: image
    size_is_ignored: 1
    files: [{path: checkpoints/mine.safetensors, url: "https://e.com/mine", size: "4.8GB"}]
  MY_LORA:
    name: Mine
    type: image
    gated: https://huggingface.co/org/repo
    files: [{path: loras/mine.safetensors, url: "https://huggingface.co/org/repo/resolve/main/m.safetensors"}]
""",
        encoding="utf-8",
    )
    cat = load_catalog(user)
    assert cat.presets["SD15_BASE"].name == "My SD 1.5"
    assert cat.presets["SD15_BASE"].files[0].size == 4_800_000_000
    assert (
        cat.presets["MY_LORA"].gated
        and cat.presets["MY_LORA"].licence_url == "https://huggingface.co/org/repo"
    )
    (warn,) = cat.problems
    assert warn.level == "warning" and warn.line == 5 and warn.field == "size_is_ignored"


def test_close_matches() -> None:
    cat = load_catalog()
    assert "WAN_22_5B_TIV2" in cat.close_matches("wan_22_5b_tiv")
