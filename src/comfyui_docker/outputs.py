"""The gallery of `workspace/output`: list, read what ComfyUI embedded, zip, delete.

* Listing walks the output folder (images and videos only; hidden entries and `.part` files
  skipped), newest first, bounded by `limit`.
* `png_text` reads the `tEXt` / `zTXt` / `iTXt` chunks of a PNG itself (no Pillow): ComfyUI's
  SaveImage stores the API graph as `prompt` and, from the UI, the editor graph as `workflow`.
  Only the chunks before the image data are read, at most `MAX_META_BYTES` of them, and a
  compressed chunk is inflated to at most `MAX_TEXT_BYTES` (a few KB can inflate to gigabytes):
  a chunk that would grow beyond that is left out.
* `zip_stream` yields a zip of a selection with stored (uncompressed: images are already
  compressed) entries as it reads the files, so a large selection is never held in memory.
* Every path given by a user is resolved with `resolve` and must stay inside the folder.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInput, NotFound

IMAGE_EXT = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})
VIDEO_EXT = frozenset({".mp4", ".webm", ".mov", ".mkv"})
AUDIO_EXT = frozenset({".wav", ".mp3", ".flac", ".ogg"})
MEDIA_EXT = IMAGE_EXT | VIDEO_EXT | AUDIO_EXT
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_META_BYTES = 16 * 1024 * 1024
MAX_TEXT_BYTES = 8 * 1024 * 1024  # per chunk, after inflating
CHUNK = 1024 * 1024
MAX_SELECTION = 5000


@dataclass(frozen=True)
class OutputItem:
    rel: str  # path relative to the output folder, with "/"
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def subfolder(self) -> str:
        return self.rel.rsplit("/", 1)[0] if "/" in self.rel else ""

    @property
    def kind(self) -> str:
        ext = os.path.splitext(self.rel)[1].lower()
        if ext in VIDEO_EXT:
            return "video"
        if ext in AUDIO_EXT:
            return "audio"
        return "image"


def list_outputs(root: Path, limit: int = 200, offset: int = 0) -> tuple[list[OutputItem], int]:
    """Media files under `root`, newest first: (page, total)."""
    found: list[OutputItem] = []
    if not root.is_dir():
        return [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for fname in filenames:
            if fname.startswith(".") or os.path.splitext(fname)[1].lower() not in MEDIA_EXT:
                continue
            try:
                st = (base / fname).stat()
            except OSError:
                continue
            rel = (base / fname).relative_to(root).as_posix()
            found.append(OutputItem(rel, st.st_size, st.st_mtime))
    found.sort(key=lambda item: (item.mtime, item.rel), reverse=True)
    return found[offset : offset + limit], len(found)


def resolve(root: Path, rel: str) -> Path:
    """`root/rel` for a user-given relative path; refuses anything that leaves `root`."""
    if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or "\\" in rel:
        raise InvalidInput(f"not a file in the output folder: {rel!r}", hint="use a name from the gallery")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"not a file in the output folder: {rel!r}", hint="use a name from the gallery")
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise InvalidInput(f"{rel!r} points outside the output folder") from None
    if not path.is_file():
        raise NotFound(f"no such output: {rel}", hint="it may have been deleted; reload the gallery")
    return path


def png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG (keyword → text); {} for anything that is not a readable PNG."""
    out: dict[str, str] = {}
    try:
        with path.open("rb") as fh:
            if fh.read(8) != PNG_SIGNATURE:
                return out
            budget = MAX_META_BYTES
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    break
                length, ctype = struct.unpack(">I4s", head)
                if ctype in (b"IDAT", b"IEND"):
                    break
                if ctype not in (b"tEXt", b"zTXt", b"iTXt") or length > budget:
                    fh.seek(length + 4, os.SEEK_CUR)
                    continue
                budget -= length
                data = fh.read(length)
                fh.seek(4, os.SEEK_CUR)  # CRC
                item = _text_chunk(ctype, data)
                if item is not None:
                    out[item[0]] = item[1]
    except OSError:
        return out
    return out


def _text_chunk(ctype: bytes, data: bytes) -> tuple[str, str] | None:
    key, sep, rest = data.partition(b"\x00")
    if not sep:
        return None
    keyword = key.decode("latin-1")
    try:
        if ctype == b"tEXt":
            return keyword, rest.decode("latin-1")
        if ctype == b"zTXt":
            text = _inflate(rest[1:])
            return None if text is None else (keyword, text.decode("latin-1"))
        # iTXt: compression flag, method, language\0, translated keyword\0, text (UTF-8)
        flag = rest[0]
        _lang, _, rest2 = rest[2:].partition(b"\x00")
        _trans, _, text = rest2.partition(b"\x00")
        if flag:
            inflated = _inflate(text)
            if inflated is None:
                return None
            text = inflated
        return keyword, text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError):
        return None


def _inflate(data: bytes, limit: int = MAX_TEXT_BYTES) -> bytes | None:
    """zlib data inflated, or None when it would grow past `limit` bytes (a decompression bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail or (len(out) >= limit and inflater.decompress(b"", 1)):
        return None
    return out


_SAMPLER_KEYS = ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
_MODEL_KEYS = ("ckpt_name", "unet_name", "lora_name", "vae_name", "clip_name", "clip_name1", "clip_name2")


def summarize_prompt(graph: dict[str, Any]) -> dict[str, Any]:
    """The settings a person wants to see from an API-format graph: prompts, sampler, models, size."""
    summary: dict[str, Any] = {"prompts": [], "models": [], "settings": {}}
    if not isinstance(graph, dict):
        return summary
    for node in graph.values():
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, dict):
            continue
        ctype = str(node.get("class_type", ""))
        for key in ("text", "prompt", "text_g", "text_l"):
            if isinstance(inputs.get(key), str) and inputs[key].strip() and "TextEncode" in ctype:
                summary["prompts"].append(inputs[key])
        for key in _MODEL_KEYS:
            if isinstance(inputs.get(key), str):
                summary["models"].append(inputs[key])
        if "Sampler" in ctype or ctype.startswith("KSampler"):
            for key in _SAMPLER_KEYS:
                if key in inputs and not isinstance(inputs[key], list):
                    summary["settings"][key] = inputs[key]
        if ctype.startswith("Empty") and "width" in inputs and not isinstance(inputs["width"], list):
            summary["settings"]["size"] = f"{inputs['width']}×{inputs.get('height')}"
    return summary


def metadata(path: Path) -> dict[str, Any]:
    """What the gallery shows for one file: the embedded graph(s) and a summary."""
    if path.suffix.lower() != ".png":
        return {}
    texts = png_text(path)
    out: dict[str, Any] = {}
    if "prompt" in texts:
        try:
            graph = json.loads(texts["prompt"])
        except ValueError:
            graph = None
        if isinstance(graph, dict):
            out["prompt"] = graph
            out["summary"] = summarize_prompt(graph)
    if "workflow" in texts:
        out["has_workflow"] = True
    others = {k: v[:2000] for k, v in texts.items() if k not in ("prompt", "workflow")}
    if others:
        out["text"] = others
    return out


def delete(root: Path, rels: Iterable[str]) -> list[str]:
    """Delete each file (all are checked first, so a bad name deletes nothing); returns names."""
    paths = [(rel, resolve(root, rel)) for rel in rels]
    for _rel, path in paths:
        path.unlink()
    return [rel for rel, _ in paths]


class _Sink:
    """A write-only, unseekable stream that hands its bytes to the generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def check_selection(root: Path, rels: list[str]) -> list[tuple[str, Path]]:
    if not rels:
        raise InvalidInput("nothing selected", hint="tick one or more outputs first")
    if len(rels) > MAX_SELECTION:
        raise InvalidInput(f"{len(rels)} files selected; at most {MAX_SELECTION} per zip")
    seen: set[str] = set()
    out = []
    for rel in rels:
        if rel not in seen:
            seen.add(rel)
            out.append((rel, resolve(root, rel)))
    return out


def zip_stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """A zip of `files` (arcname, path), produced while reading; entries are stored."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[call-overload]
        for arcname, path in files:
            st = path.stat()
            info = zipfile.ZipInfo.from_file(path, arcname)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = st.st_size
            with path.open("rb") as src, zf.open(info, "w", force_zip64=st.st_size >= 2**31) as dst:
                while block := src.read(CHUNK):
                    dst.write(block)
                    if sink.pos and sum(len(p) for p in sink.parts) >= CHUNK:
                        yield sink.take()
            yield sink.take()
    yield sink.take()
