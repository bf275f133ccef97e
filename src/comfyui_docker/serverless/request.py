"""A job's `input`, checked: worker-comfyui 5.x's fields, and ours beside them.

    {"workflow": {...},                      API format (worker-comfyui) or UI format (ours)
     "images": [{"name": "a.png", "image": "<base64, data-URI prefix optional>"}],
     "comfy_org_api_key": "...",             for ComfyUI's API nodes
     "template": "image_z_image_turbo",      ours: an official template instead of `workflow`
     "set": {"KSampler.seed": 42},           ours: inputs changed by node title or id
     "install_missing": true}                ours: download missing models to the volume first

`parse_job_input` returns a `JobRequest` or raises JobInputError with worker-comfyui's own
wording where it has one ("Missing 'workflow' parameter", ...). Unknown keys are ignored, as
worker-comfyui does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

#: What worker-comfyui calls a failed `images` entry; our details follow it.
UPLOAD_FAILED = "Failed to upload one or more input images"
_SPACE = re.compile(r"\s+")


class JobInputError(InvalidInput):
    code = "invalid_job_input"


@dataclass(frozen=True)
class InputImage:
    name: str
    data: bytes


@dataclass(frozen=True)
class JobRequest:
    workflow: dict[str, Any] | None = None
    template: str | None = None
    images: tuple[InputImage, ...] = ()
    values: dict[str, object] = field(default_factory=dict)
    install_missing: bool = False
    comfy_org_api_key: str | None = None


def _object(raw: object) -> dict[str, Any]:
    if raw is None:
        raise JobInputError("Please provide input", hint='send {"input": {"workflow": {...}}}')
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise JobInputError("Invalid JSON format in input") from None
    if not isinstance(raw, dict):
        raise JobInputError("input must be a JSON object", hint='send {"input": {"workflow": {...}}}')
    return raw


def plain_name(name: str) -> bool:
    """A file name ComfyUI's LoadImage lists: no folder, no hidden or parent part."""
    return bool(name) and name == name.strip() and "/" not in name and "\\" not in name and name[0] != "."


def decode_image(index: int, name: str, text: str) -> bytes:
    """The bytes of `images[index]`: base64, with or without a `data:...;base64,` prefix."""
    payload = text.split(",", 1)[1] if "," in text else text  # base64 itself has no comma
    try:
        data = base64.b64decode(_SPACE.sub("", payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JobInputError(
            f"{UPLOAD_FAILED}: images[{index}] ({name!r}) is not valid base64 ({exc})",
            hint="send the file's bytes base64-encoded, optionally as a data URI",
        ) from None
    if not data:
        raise JobInputError(f"{UPLOAD_FAILED}: images[{index}] ({name!r}) is empty")
    return data


def _images(raw: object) -> tuple[InputImage, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(
        isinstance(i, dict) and "name" in i and "image" in i for i in raw
    ):
        raise JobInputError("'images' must be a list of objects with 'name' and 'image' keys")
    out: list[InputImage] = []
    for index, item in enumerate(raw):
        name, text = item["name"], item["image"]
        if not isinstance(name, str) or not plain_name(name):
            raise JobInputError(
                f"{UPLOAD_FAILED}: images[{index}].name {name!r} must be a plain file name",
                hint="no folders and no leading dot: the workflow's LoadImage refers to it by that name",
            )
        if any(i.name == name for i in out):
            raise JobInputError(f"{UPLOAD_FAILED}: the name {name!r} is used twice in 'images'")
        if not isinstance(text, str):
            raise JobInputError(f"{UPLOAD_FAILED}: images[{index}].image must be a base64 string")
        out.append(InputImage(name, decode_image(index, name, text)))
    return tuple(out)


def _optional(data: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise JobInputError(f"'{key}' must be {what}")
    return value


def parse_job_input(raw: object) -> JobRequest:
    data = _object(raw)
    workflow = data.get("workflow")
    template = _optional(data, "template", str, "the name of an official template")
    if workflow is None and not template:
        raise JobInputError(
            "Missing 'workflow' parameter",
            hint="send the workflow (API or UI format), or 'template' with an official template's name",
        )
    if workflow is not None and template:
        raise JobInputError("send either 'workflow' or 'template', not both")
    if workflow is not None and not isinstance(workflow, dict):
        raise JobInputError(
            "'workflow' must be a JSON object", hint="the workflow in ComfyUI's API format (or the editor's)"
        )
    values = _optional(data, "set", dict, 'an object such as {"KSampler.seed": 42}') or {}
    install = _optional(data, "install_missing", bool, "true or false") or False
    key = _optional(data, "comfy_org_api_key", str, "a string") or None
    return JobRequest(workflow, template, _images(data.get("images")), dict(values), install, key)
