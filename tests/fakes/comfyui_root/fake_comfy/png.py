"""Minimal PNG writer/reader (zlib + struct, no Pillow): solid-colour RGB images with tEXt chunks."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode(width: int, height: int, rgb: int, text: dict[str, str] | None = None) -> bytes:
    """A `width`×`height` PNG filled with colour `rgb` (0xRRGGBB), with optional tEXt chunks."""
    pixel = bytes(((rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF))
    row = b"\x00" + pixel * width
    raw = row * height
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(raw, 4)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def size_of(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header, or None when `data` is not a PNG."""
    if len(data) < 24 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def text_chunks(data: bytes) -> dict[str, str]:
    """All tEXt chunks of a PNG."""
    out: dict[str, str] = {}
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and b"\x00" in body:
            key, value = body.split(b"\x00", 1)
            out[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    return out
