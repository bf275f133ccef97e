"""Outputs service and page: listing, PNG text chunks, zip streaming, delete confinement."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest

from comfy_samples import sample_path
from comfyui_docker import outputs
from comfyui_docker.errors import InvalidInput, NotFound


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def make_png(
    texts: dict[str, str], *, itxt: dict[str, str] | None = None, ztxt: dict[str, str] | None = None
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    out = outputs.PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
    for k, v in texts.items():
        out += _chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
    for k, v in (itxt or {}).items():
        out += _chunk(b"iTXt", k.encode() + b"\x00\x01\x00en\x00\x00" + zlib.compress(v.encode()))
    for k, v in (ztxt or {}).items():
        out += _chunk(b"zTXt", k.encode() + b"\x00\x00" + zlib.compress(v.encode("latin-1")))
    out += _chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + _chunk(b"IEND", b"")
    return out


def test_png_text_reads_comfyui_sample() -> None:
    texts = outputs.png_text(sample_path("view_g1.png"))
    graph = json.loads(texts["prompt"])
    assert graph["1"]["class_type"] == "EmptyImage"
    meta = outputs.metadata(sample_path("view_g1.png"))
    assert meta["summary"]["settings"]["size"] == "64×48"


def test_png_text_all_chunk_kinds(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(
        make_png({"prompt": "{}"}, itxt={"workflow": '{"nodes": []} ünïcode'}, ztxt={"z": "zipped"})
    )
    assert outputs.png_text(p) == {"prompt": "{}", "workflow": '{"nodes": []} ünïcode', "z": "zipped"}


def test_png_text_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not a png at all")
    assert outputs.png_text(tmp_path / "x.png") == {}
    truncated = make_png({"prompt": "{}"})[:30]
    (tmp_path / "t.png").write_bytes(truncated)
    assert outputs.png_text(tmp_path / "t.png") == {}
    assert outputs.metadata(tmp_path / "missing.png") == {}


def test_summary_of_a_sampler_graph() -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 7.0, "model": ["4", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768}},
    }
    s = outputs.summarize_prompt(graph)
    assert s["prompts"] == ["a cat"] and s["models"] == ["sd15.safetensors"]
    assert s["settings"] == {"seed": 5, "steps": 20, "cfg": 7.0, "size": "512×768"}


def _fill(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(
        ["old.png", "sub/mid.webp", "new.mp4", ".hidden.png", "notes.txt", "x.png.part"]
    ):
        p = root / name
        p.write_bytes(b"x" * (i + 1))
        os.utime(p, (1000 + i, 1000 + i))


def test_list_newest_first_media_only(tmp_path: Path) -> None:
    _fill(tmp_path)
    items, total = outputs.list_outputs(tmp_path)
    assert [i.rel for i in items] == ["new.mp4", "sub/mid.webp", "old.png"]
    assert total == 3 and items[0].kind == "video" and items[1].subfolder == "sub"
    page, total = outputs.list_outputs(tmp_path, limit=1, offset=1)
    assert [i.rel for i in page] == ["sub/mid.webp"] and total == 3
    assert outputs.list_outputs(tmp_path / "nope") == ([], 0)


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "/etc/passwd", "a/../../b.png", "x\x00.png", "", "a\\b.png", "./a.png"]
)
def test_resolve_refuses_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        outputs.resolve(tmp_path, bad)


def test_resolve_refuses_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    root = tmp_path / "out"
    root.mkdir()
    (root / "link.png").symlink_to(outside)
    with pytest.raises(InvalidInput):
        outputs.resolve(root, "link.png")
    with pytest.raises(NotFound):
        outputs.resolve(root, "gone.png")


def test_delete_checks_all_first(tmp_path: Path) -> None:
    _fill(tmp_path)
    with pytest.raises(InvalidInput):
        outputs.delete(tmp_path, ["old.png", "../x"])
    assert (tmp_path / "old.png").exists()
    assert outputs.delete(tmp_path, ["old.png", "sub/mid.webp"]) == ["old.png", "sub/mid.webp"]
    assert not (tmp_path / "old.png").exists()


def test_zip_stream_is_valid_and_streamed(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(3 * outputs.CHUNK + 17))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "small.png").write_bytes(b"hello")
    parts = list(outputs.zip_stream(outputs.check_selection(tmp_path, ["big.png", "s/small.png", "big.png"])))
    assert max(len(p) for p in parts) <= 2 * outputs.CHUNK + 4096  # never the whole archive at once
    z = zipfile.ZipFile(io.BytesIO(b"".join(parts)))
    assert z.testzip() is None
    assert [(i.filename, i.compress_type) for i in z.infolist()] == [("big.png", 0), ("s/small.png", 0)]
    assert z.read("big.png") == big.read_bytes()
    with pytest.raises(InvalidInput):
        outputs.check_selection(tmp_path, [])


async def test_outputs_page_and_routes(client: httpx.AsyncClient, ws_root: Path) -> None:
    out = ws_root / "output"
    (out / "dash").mkdir()
    (out / "dash" / "demo_00001_.png").write_bytes((sample_path("view_g1.png")).read_bytes())
    (out / "b.png").write_bytes(make_png({"parameters": "a1111 style"}))
    page = await client.get("/outputs")
    assert "dash/demo_00001_.png" in page.text and "2 files" in page.text
    f = await client.get("/outputs/file/dash/demo_00001_.png")
    assert f.status_code == 200 and f.headers["content-type"] == "image/png"
    assert f.content == (sample_path("view_g1.png")).read_bytes()
    dl = await client.get("/outputs/file/b.png?download=1")
    assert dl.headers["content-disposition"].startswith("attachment")
    meta = await client.get("/outputs/meta/dash/demo_00001_.png", headers={"HX-Request": "true"})
    assert "EmptyImage" in meta.text and "64×48" in meta.text
    assert (await client.get("/outputs/file/%2e%2e/config/user_settings.yaml")).status_code in (400, 404)
    assert (await client.get("/outputs/file/nope.png")).status_code == 404
    z = await client.get("/outputs/zip", params=[("f", "b.png"), ("f", "dash/demo_00001_.png")])
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(z.content)).namelist()) == ["b.png", "dash/demo_00001_.png"]
    bad = await client.get("/outputs/zip", params=[("f", "../x.png")], headers={"HX-Request": "true"})
    assert (bad.status_code == 400 and "outside" in bad.text) or "not a file" in bad.text
    d = await client.post(
        "/outputs/delete", data={"f": ["b.png"]}, headers={"HX-Request": "true", "HX-Target": "gallery"}
    )
    assert d.status_code == 200 and "Deleted 1 file." in d.text and 'id="gallery"' in d.text
    assert "<nav" not in d.text
    assert not (out / "b.png").exists()
    none = await client.post("/outputs/delete", data={}, headers={"HX-Request": "true"})
    assert none.status_code == 400


def _bomb(size: int) -> bytes:
    """`size` zero bytes, zlib-compressed without ever holding them (a decompression bomb)."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def test_a_png_text_bomb_is_not_inflated(tmp_path: Path) -> None:
    """388 KB of zTXt used to inflate to 735 MB (and take 6 s) on /outputs/meta."""
    import tracemalloc

    bomb = _bomb(128 << 20)
    assert len(bomb) < 1 << 20
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    png = outputs.PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
    png += _chunk(b"zTXt", b"prompt\x00\x00" + bomb)
    png += _chunk(b"iTXt", b"workflow\x00\x01\x00en\x00\x00" + bomb)
    png += _chunk(b"tEXt", b"note\x00kept")
    png += _chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + _chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    tracemalloc.start()
    try:
        found = outputs.png_text(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == {"note": "kept"}
    assert peak < 3 * outputs.MAX_TEXT_BYTES
    # just under the limit still reads
    fine = tmp_path / "fine.png"
    fine.write_bytes(make_png({}, ztxt={"prompt": "x" * (outputs.MAX_TEXT_BYTES - 1)}))
    assert len(outputs.png_text(fine)["prompt"]) == outputs.MAX_TEXT_BYTES - 1


@pytest.mark.parametrize(
    ("name", "body", "media", "disposition"),
    [
        ("evil.html", b"<script>alert(document.cookie)</script>", "application/octet-stream", "attachment"),
        ("evil.svg", b"<svg onload='alert(1)'/>", "application/octet-stream", "attachment"),
        ("notes.txt", b"hello", "application/octet-stream", "attachment"),
        ("cat.png", make_png({"a": "b"}), "image/png", "inline"),
        ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4", "inline"),
    ],
)  # fmt: skip
async def test_output_files_only_show_media_inline(
    client: httpx.AsyncClient, ws_root: Path, name: str, body: bytes, media: str, disposition: str
) -> None:
    """ComfyUI's /upload/image?type=output writes any file into the output folder: an .html or
    .svg served inline on the dashboard's origin would run its script with the user's session."""
    (ws_root / "output" / name).write_bytes(body)
    r = await client.get(f"/outputs/file/{name}")
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"].split(";")[0] == media
    assert r.headers["content-disposition"].startswith(disposition)
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert r.headers["x-content-type-options"] == "nosniff"
