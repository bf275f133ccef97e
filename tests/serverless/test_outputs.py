"""Which files a job returns, what they are (`media`), and how: base64, or S3 through the SDK."""

from __future__ import annotations

import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway, OutputFile
from comfyui_docker.serverless.outputs import OutputSender, job_files, media_of, sdk_uploader
from fakes.comfyui_root.launch import run_comfyui
from fakes.runpod_api import FakeS3

from .conftest import b64


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


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[ComfyUIGateway, Path]]:
    with run_comfyui(tmp_path) as comfy:
        async with aiohttp.ClientSession() as session:
            yield ComfyUIGateway(ComfyUIClient(session, comfy.url)), comfy.layout.output


OUTPUTS = {
    "7": {
        "images": [{"filename": "clip_00001_.mp4", "subfolder": "vid", "type": "output"}],
        "animated": [True],
    },
    "8": {"audio": [{"filename": "song_00001_.flac", "subfolder": "", "type": "output"}]},
    "9": {"images": [{"filename": "gone_00001_.png", "subfolder": "", "type": "output"}]},
}


async def test_every_file_as_base64_with_its_media(gateway: tuple[ComfyUIGateway, Path]) -> None:
    comfy, output = gateway
    (output / "vid").mkdir(parents=True)
    (output / "vid" / "clip_00001_.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 video")
    (output / "song_00001_.flac").write_bytes(b"fLaC audio")
    entries, errors = await OutputSender(comfy).send("job-1", "prompt-1", OUTPUTS)
    assert entries == [
        {
            "filename": "clip_00001_.mp4",
            "type": "base64",
            "data": b64(b"\x00\x00\x00\x18ftypmp42 video"),
            "media": "video",
        },
        {"filename": "song_00001_.flac", "type": "base64", "data": b64(b"fLaC audio"), "media": "audio"},
    ]
    assert errors == [
        "Failed to read gone_00001_.png from ComfyUI: ComfyUI has no output file gone_00001_.png"
    ]


async def test_every_file_to_s3_with_its_content_type(
    gateway: tuple[ComfyUIGateway, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    comfy, output = gateway
    (output / "vid").mkdir(parents=True)
    (output / "vid" / "clip_00001_.mp4").write_bytes(b"video bytes")
    (output / "song_00001_.flac").write_bytes(b"audio bytes")
    (tmp_path / "jobtmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "jobtmp"))  # where the job's copies go
    with FakeS3() as s3:
        monkeypatch.setenv("BUCKET_ENDPOINT_URL", s3.url)
        monkeypatch.setenv("BUCKET_ACCESS_KEY_ID", "AKIDTEST")
        monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "secret")
        entries, errors = await OutputSender(comfy, sdk_uploader()).send("job-9", "p", OUTPUTS)
        stored = dict(s3.objects)
    assert [(e["filename"], e["type"], e["media"]) for e in entries] == [
        ("clip_00001_.mp4", "s3_url", "video"),
        ("song_00001_.flac", "s3_url", "audio"),
    ]
    month = time.strftime("%m-%y")
    assert stored[f"/{month}/job-9/clip_00001_.mp4"].body == b"video bytes"
    assert stored[f"/{month}/job-9/clip_00001_.mp4"].content_type == "video/mp4"
    assert stored[f"/{month}/job-9/song_00001_.flac"].content_type == "audio/flac"
    assert all(urllib.parse.urlsplit(e["data"]).path in stored for e in entries)
    assert len(errors) == 1 and list((tmp_path / "jobtmp").iterdir()) == []  # its temp folder is gone
