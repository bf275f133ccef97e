"""Which files a job returns, and what they are (`media`)."""

from __future__ import annotations

from comfyui_docker.comfyui import OutputFile
from comfyui_docker.serverless.outputs import job_files, media_of


def test_media_from_the_suffix_then_the_output_key() -> None:
    assert media_of("images", "ComfyUI_00001_.png") == "image"
    assert media_of("images", "ComfyUI_00001_.mp4") == "video"  # SaveVideo reports under "images"
    assert media_of("gifs", "AnimateDiff_00001.webm") == "video"  # VideoHelperSuite
    assert media_of("gifs", "clip_00001") == "video"
    assert media_of("audio", "ComfyUI_00001_.flac") == "audio"
    assert media_of("3d", "mesh_00001_.glb") == "3d"
    assert media_of("images", "animated.webp") == "image"
    assert media_of("text", "notes.txt") == "file"


def test_saved_files_in_node_order_without_temp_files_or_repeats() -> None:
    outputs = {
        "9": {"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]},
        "10": {
            "images": [{"filename": "a_00001_.png", "subfolder": "x", "type": "output"}],
            "animated": [True],
        },
        "11": {"audio": [{"filename": "song_00001_.flac", "subfolder": "audio", "type": "output"}]},
        "12": {
            "gifs": [
                {"filename": "v_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}
            ]
        },
        "13": {"3d": [{"filename": "mesh.glb", "subfolder": "3d", "type": "output"}], "text": ["not a file"]},
        "14": {"images": [{"filename": "a_00001_.png", "subfolder": "x", "type": "output"}]},
    }
    found = job_files(outputs)
    assert [(f.file, f.media) for f in found] == [
        (OutputFile("a_00001_.png", "x", "output"), "image"),
        (OutputFile("song_00001_.flac", "audio", "output"), "audio"),
        (OutputFile("v_00001.mp4", "", "output"), "video"),
        (OutputFile("mesh.glb", "3d", "output"), "3d"),
    ]
    assert job_files({}) == []
