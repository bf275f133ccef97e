"""Node definitions (the real ComfyUI 0.33 `/object_info`) and the few nodes the fake really runs.

Every class of the real object_info is accepted. EmptyImage, ImageScale, SaveImage, PreviewImage,
LoadImage, EmptyLatentImage, VAEDecode, KSampler and ColorTransfer do something observable
(files, sizes, progress steps); model loaders open their file and fail like ComfyUI on a dummy
one; every other class is a no-op that passes an IMAGE/LATENT input through (or makes a 64×64
placeholder) so converted templates run end to end when their models exist.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import os
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import png
from .folders import FolderTable, input_images

# (class, input) -> model folder type whose files fill the combo at request time.
MODEL_COMBOS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "config_name"): "configs",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoaderBypass", "lora_name"): "loras",
    ("LoraLoaderBypassModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("LTXAVTextEncoderLoader", "text_encoder"): "text_encoders",
    ("LTXAVTextEncoderLoader", "ckpt_name"): "checkpoints",
    ("LTXVAudioVAELoader", "ckpt_name"): "checkpoints",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("LoadBackgroundRemovalModel", "bg_removal_name"): "background_removal",
    ("FrameInterpolationModelLoader", "model_name"): "frame_interpolation",
    ("OpticalFlowLoader", "model_name"): "optical_flow",
    ("LoadMediaPipeFaceLandmarker", "model_name"): "detection",
    ("LoadMoGeModel", "model_name"): "geometry_estimation",
    ("LoadDA3Model", "model_name"): "geometry_estimation",
}
CHECKPOINT_CLASSES = {
    "CheckpointLoaderSimple",
    "CheckpointLoader",
    "ImageOnlyCheckpointLoader",
    "unCLIPCheckpointLoader",
}
PROGRESS_CLASSES = {"KSampler", "KSamplerAdvanced", "ColorTransfer"}


def load_object_info(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _set_options(spec: list[Any], options: list[str]) -> list[Any]:
    spec = copy.deepcopy(spec)
    if spec and spec[0] == "COMBO":
        spec[1]["options"] = options
    else:
        spec[0] = options
    return spec


def fill_dynamic(info: dict[str, Any], cls: str, folders: FolderTable, input_dir: Path) -> dict[str, Any]:
    """One class's definition with model and image combos filled from the disk (as at request time)."""
    entry = info[cls]
    dynamic = [(name, folder) for (c, name), folder in MODEL_COMBOS.items() if c == cls]
    if cls in ("LoadImage", "LoadImageMask"):
        dynamic.append(("image", "__input__"))
    if not dynamic:
        return entry  # type: ignore[no-any-return]
    entry = copy.copy(entry)
    entry["input"] = copy.copy(entry["input"])
    for section in ("required", "optional"):
        specs = entry["input"].get(section)
        if not specs:
            continue
        specs = dict(specs)
        for name, folder in dynamic:
            if name in specs:
                if folder == "__input__":
                    options = input_images(input_dir)
                else:
                    options = folders.list(folder)
                    if cls == "VAELoader":
                        options = [*options, "pixel_space"]
                specs[name] = _set_options(specs[name], options)
        entry["input"][section] = specs
    return entry


# ---- values flowing between nodes --------------------------------------------------------


@dataclass
class Image:
    width: int
    height: int
    count: int = 1
    color: int = 0x808080


@dataclass
class Latent:
    width: int
    height: int
    count: int = 1


class NodeError(Exception):
    """A node raised: carries the type name and traceback lines ComfyUI would report."""

    def __init__(self, exc_type: str, message: str, traceback: list[str]) -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback


@dataclass
class RunContext:
    output_dir: Path
    input_dir: Path
    temp_dir: Path
    folders: FolderTable
    prompt: dict[str, Any]
    extra_pnginfo: dict[str, Any] = field(default_factory=dict)
    metadata: bool = True
    step_seconds: float = 0.01
    progress: Callable[[int, int], Awaitable[None]] | None = None


_CKPT_TRACEBACK = [
    '  File "COMFYUI_ROOT/execution.py", line 545, in execute\n    output_data, output_ui, has_subgraph, '
    "has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n",
    '  File "COMFYUI_ROOT/nodes.py", line 636, in load_checkpoint\n'
    "    out = comfy.sd.load_checkpoint_guess_config("
    "ckpt_path, output_vae=True, output_clip=True)\n",
    '  File "COMFYUI_ROOT/comfy/sd.py", line 2092, in load_checkpoint_guess_config\n    raise RuntimeError('
    '"ERROR: Could not detect model type of: {}\\n{}".format(ckpt_path, hint))\n',
]


_SAFETENSORS_TRACEBACK = [
    '  File "COMFYUI_ROOT/comfy/utils.py", line 185, in load_torch_file\n    raise e\n',
    '  File "COMFYUI_ROOT/comfy/utils.py", line 169, in load_torch_file\n'
    '    with safetensors.safe_open(ckpt, framework="pt", device=device.type) as f:\n',
]
_VAE_TRACEBACK = [
    '  File "COMFYUI_ROOT/nodes.py", line 854, in load_vae\n    vae.throw_exception_if_invalid()\n',
    '  File "COMFYUI_ROOT/comfy/sd.py", line 1103, in throw_exception_if_invalid\n    raise RuntimeError('
    '"ERROR: VAE is invalid: None\\n\\nIf the VAE is from a checkpoint loader node your checkpoint does not '
    'contain a valid VAE.")\n',
]


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The header as the safetensors package (0.8) reads it; ValueError with its reason text otherwise."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("header too small")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError("header too large")
        if 8 + n > path.stat().st_size:
            raise ValueError("invalid header length")
        raw = fh.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-8 in header: {exc.reason}") from None
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"invalid JSON in header: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("invalid JSON in header: invalid type, expected struct HashMetadata")
    return header


def _load_model(ctx: RunContext, cls: str, folder: str, name: str) -> None:
    """Fail like the real loaders (observed against ComfyUI 0.33 with safetensors 0.8); a header that
    names at least one tensor counts as a loadable model (the fake runs no real model)."""
    path = ctx.folders.find(folder, name)
    if path is None:
        raise NodeError(
            "FileNotFoundError", f"Model in folder '{folder}' with filename '{name}' not found.", []
        )
    try:
        header = read_safetensors_header(path)
    except OSError as exc:
        raise NodeError(type(exc).__name__, f"{exc}\n", []) from None
    except ValueError as exc:
        raise NodeError(
            "safetensors._safetensors_rust.SafetensorError",
            f"Error while deserializing header: {exc}\n",
            _SAFETENSORS_TRACEBACK,
        ) from None
    if any(key != "__metadata__" for key in header):
        return
    if cls in CHECKPOINT_CLASSES:
        raise NodeError("RuntimeError", f"ERROR: Could not detect model type of: {path}\n\n", _CKPT_TRACEBACK)
    if cls == "VAELoader":
        raise NodeError(
            "RuntimeError",
            "ERROR: VAE is invalid: None\n\nIf the VAE is from a checkpoint loader node your checkpoint "
            "does not contain a valid VAE.\n",
            _VAE_TRACEBACK,
        )


def _save(ctx: RunContext, images: Image, prefix: str, out_dir: Path, kind: str) -> dict[str, Any]:
    norm = os.path.normpath(prefix)
    subfolder = os.path.dirname(norm)
    filename = os.path.basename(norm)
    folder = os.path.abspath(os.path.join(out_dir, subfolder))
    if os.path.commonpath((str(out_dir), folder)) != str(out_dir):
        raise NodeError(
            "Exception",
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}\n         output_dir: {out_dir}",
            [],
        )
    os.makedirs(folder, exist_ok=True)
    counter = 1
    for existing in os.listdir(folder):
        if existing.startswith(filename + "_"):
            digits = existing[len(filename) + 1 :].split("_")[0]
            if digits.isdigit():
                counter = max(counter, int(digits) + 1)
    text: dict[str, str] = {}
    if ctx.metadata:
        text["prompt"] = json.dumps(ctx.prompt)
        for key, value in ctx.extra_pnginfo.items():
            text[key] = json.dumps(value)
    results = []
    for _ in range(images.count):
        name = f"{filename}_{counter:05}_.png"
        data = png.encode(images.width, images.height, images.color, text)
        tmp = os.path.join(folder, f".{name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, os.path.join(folder, name))
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"images": results}


def _first(inputs: dict[str, Any], kind: type) -> Any:
    for value in inputs.values():
        if isinstance(value, kind):
            return value
    return None


async def _steps(ctx: RunContext, total: int) -> None:
    for step in range(1, total + 1):
        await asyncio.sleep(ctx.step_seconds)
        if ctx.progress is not None:
            await ctx.progress(step, total)


async def run_node(
    ctx: RunContext, cls: str, info: dict[str, Any], inputs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """Execute one node: (outputs, ui). Raises NodeError like a failing ComfyUI node."""
    if cls == "EmptyImage":
        return (
            Image(
                int(inputs["width"]), int(inputs["height"]), int(inputs["batch_size"]), int(inputs["color"])
            ),
        ), None
    if cls == "ImageScale":
        src: Image = inputs["image"]
        return (
            Image(
                int(inputs["width"]) or src.width, int(inputs["height"]) or src.height, src.count, src.color
            ),
        ), None
    if cls == "EmptyLatentImage":
        return (Latent(int(inputs["width"]), int(inputs["height"]), int(inputs["batch_size"])),), None
    if cls == "VAEDecode":
        lat = inputs.get("samples")
        if isinstance(lat, Latent):
            return (Image(lat.width, lat.height, lat.count),), None
        return (Image(64, 64),), None
    if cls in ("LoadImage", "LoadImageMask"):
        name = str(inputs["image"]).removesuffix(" [input]")
        path = ctx.input_dir / name
        size = png.size_of(path.read_bytes()[:64])
        width, height = size or (64, 64)
        img = Image(width, height)
        return ((img, None) if cls == "LoadImage" else (None,)), None
    for (c, name), folder in MODEL_COMBOS.items():
        if c == cls and name in inputs and not (cls == "VAELoader" and inputs[name] == "pixel_space"):
            _load_model(ctx, cls, folder, str(inputs[name]))
    if cls in PROGRESS_CLASSES:
        if cls == "ColorTransfer":
            target = inputs.get("image_target")
            await _steps(ctx, target.count if isinstance(target, Image) else 1)
            return (target,), None
        await _steps(ctx, int(inputs.get("steps", 1)))
        return (inputs.get("latent_image"),), None
    if info.get("output_node"):
        images = inputs.get("images")
        if isinstance(images, Image):
            if cls == "PreviewImage" or "filename_prefix" not in inputs:
                rand = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
                return (images,), _save(ctx, images, f"ComfyUI_temp_{rand}", ctx.temp_dir, "temp")
            return (images,), _save(ctx, images, str(inputs["filename_prefix"]), ctx.output_dir, "output")
        return (), None
    outputs: list[Any] = []
    for kind in info.get("output", []):
        if kind == "IMAGE":
            outputs.append(_first(inputs, Image) or Image(64, 64))
        elif kind == "LATENT":
            outputs.append(_first(inputs, Latent) or Latent(64, 64))
        else:
            outputs.append(None)
    return tuple(outputs), None
