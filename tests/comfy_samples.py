"""The recorded answers of a real ComfyUI 0.33 server, kept in the repository (tests/data/comfyui-samples).

What each file is, and how it was recorded, is in that folder's README. Tests read them only
through this module, so a clone of the repository needs nothing beside it:

    sample("queue.json")        parsed JSON (`.json`), else the raw bytes
    sample_path("view_g1.png")  the file itself, for code that takes a path
    object_info()               the full GET /object_info (the fake ComfyUI's object_info.json.gz)
    ground_truth(name)          one file of templates-api.tar.gz, parsed (the archive is read once)
    ground_truth_names()        the file names in that archive (`<template>.api.json`, `summary.json`)

A missing file is a broken checkout, so it fails the test (FileNotFoundError); it never skips.
"""

from __future__ import annotations

import copy
import gzip
import json
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent / "data" / "comfyui-samples"
# the full GET /object_info is kept once, beside the fake ComfyUI that serves it
OBJECT_INFO = Path(__file__).resolve().parent / "fakes" / "comfyui_root" / "object_info.json.gz"
TEMPLATES_API = SAMPLES / "templates-api.tar.gz"


def sample_path(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the checkout (see {SAMPLES / 'README.md'})")
    return path


def sample(name: str) -> Any:
    path = sample_path(name)
    if name.endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))
    return path.read_bytes()


@cache
def _object_info() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(OBJECT_INFO.read_bytes()))
    return data


def object_info() -> dict[str, Any]:
    """A fresh copy each call: a test may change what it gets without touching the next test's."""
    return copy.deepcopy(_object_info())


@cache
def _ground_truth() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(sample_path(TEMPLATES_API.name), "r:gz") as tar:
        for member in tar.getmembers():
            fh = tar.extractfile(member) if member.isfile() else None
            if fh is not None:
                out[Path(member.name).name] = fh.read()
    return out


def ground_truth_names() -> list[str]:
    return sorted(_ground_truth())


def ground_truth(name: str) -> Any:
    """One file of templates-api/ (what ComfyUI's own editor produced, or `summary.json`), parsed."""
    try:
        raw = _ground_truth()[name]
    except KeyError:
        raise FileNotFoundError(f"{name} is not in {TEMPLATES_API}") from None
    return json.loads(raw)
