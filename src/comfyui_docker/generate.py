"""The Generate page's built-in text-to-image templates, in ComfyUI's API format.

Templates: `demo` (EmptyImage -> SaveImage, needs no model: tries the whole flow on any pod),
`sd15`, `sdxl` and `flux_schnell` (checkpoint -> prompts -> KSampler -> decode -> SaveImage).
`build(template_id, raw_values)` validates the form values against the template's fields and
returns the graph; every problem is reported at once (`details.fields`, `details.problems`).
ComfyUI's own refusals are explained by the gateway (comfyui/explain.py).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput

SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc")
SCHEDULERS = ("normal", "karras", "simple", "sgm_uniform", "exponential", "beta")
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str  # text | int | float | choice | model | color
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    description: str
    fields: tuple[Field, ...]
    model_folder: str | None = None
    suggested_models: tuple[str, ...] = ()  # file names the official releases use
    defaults: dict[str, Any] = field(default_factory=dict)


def _prompt_fields(
    width: int, height: int, steps: int, cfg: float, sampler: str, scheduler: str
) -> tuple[Field, ...]:
    return (
        Field("model", "Checkpoint", "model", help="a file in models/checkpoints"),
        Field("prompt", "Prompt", "text", "a lighthouse on a cliff at sunset, dramatic sky, highly detailed"),
        Field("negative", "Negative prompt", "text", "blurry, low quality, watermark"),
        Field("width", "Width", "int", width, 64, 4096, 8),
        Field("height", "Height", "int", height, 64, 4096, 8),
        Field("steps", "Steps", "int", steps, 1, 150, 1),
        Field("cfg", "CFG", "float", cfg, 0.0, 30.0, 0.1),
        Field("sampler", "Sampler", "choice", sampler, choices=SAMPLERS),
        Field("scheduler", "Scheduler", "choice", scheduler, choices=SCHEDULERS),
        Field("seed", "Seed", "int", -1, -1, MAX_SEED, 1, help="-1: a new random seed each time"),
        Field("batch", "Images", "int", 1, 1, 8, 1),
    )


TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        Template(
            "demo",
            "Demo: solid colour image (no model)",
            "EmptyImage -> SaveImage. Needs no model: checks ComfyUI, the queue, progress and the gallery.",
            (
                Field("width", "Width", "int", 512, 1, 4096, 1),
                Field("height", "Height", "int", 512, 1, 4096, 1),
                Field("color", "Colour", "color", "#4f46e5"),
                Field("batch", "Images", "int", 1, 1, 8, 1),
            ),
        ),
        Template(
            "sd15",
            "Stable Diffusion 1.5",
            "Text to image at 512 px with an SD 1.5 checkpoint.",
            _prompt_fields(512, 512, 20, 7.0, "euler", "normal"),
            "checkpoints",
            ("v1-5-pruned-emaonly-fp16.safetensors", "v1-5-pruned-emaonly.safetensors"),
        ),
        Template(
            "sdxl",
            "Stable Diffusion XL",
            "Text to image at 1024 px with an SDXL checkpoint.",
            _prompt_fields(1024, 1024, 25, 7.0, "dpmpp_2m", "karras"),
            "checkpoints",
            ("sd_xl_base_1.0.safetensors",),
        ),
        Template(
            "flux_schnell",
            "FLUX.1 schnell",
            "Fast text to image in 4 steps with the all-in-one FLUX schnell fp8 checkpoint (CFG 1).",
            _prompt_fields(1024, 1024, 4, 1.0, "euler", "simple"),
            "checkpoints",
            ("flux1-schnell-fp8.safetensors",),
        ),
    )
}


def _hex_color(raw: str) -> int | None:
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", raw.strip())
    return int(m.group(1), 16) if m else None


def parse(
    template: Template, raw: Mapping[str, Any], models: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Form values -> typed values, or {field: problem} for each bad one."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in template.fields:
        given = raw.get(f.name)
        text = "" if given is None else str(given).strip()
        if f.kind == "model":
            if not text:
                errors[f.name] = f"choose a file from models/{template.model_folder}"
            elif models is not None and text not in models:
                errors[f.name] = f"{text} is not in models/{template.model_folder}"
            values[f.name] = text
        elif f.kind == "text":
            values[f.name] = str(given) if given is not None else str(f.default or "")
        elif f.kind == "choice":
            value = text or str(f.default)
            if value not in f.choices:
                errors[f.name] = f"choose one of: {', '.join(f.choices)}"
            values[f.name] = value
        elif f.kind == "color":
            color = _hex_color(text or str(f.default))
            if color is None:
                errors[f.name] = "a colour such as #4f46e5"
            values[f.name] = color or 0
        else:
            if not text:
                values[f.name] = f.default
                continue
            try:
                num: float = int(text) if f.kind == "int" else float(text)
            except ValueError:
                errors[f.name] = "a whole number" if f.kind == "int" else "a number"
                continue
            if (f.min is not None and num < f.min) or (f.max is not None and num > f.max):
                errors[f.name] = (
                    f"from {f.min:g} to {f.max:g}"
                    if f.min is not None and f.max is not None
                    else "out of range"
                )
                continue
            values[f.name] = num
    return values, errors


def graph(template: Template, v: Mapping[str, Any], *, prefix: str = "dashboard") -> dict[str, Any]:
    """The API-format graph of `template` filled with parsed values `v`."""
    batch = int(v.get("batch", 1))
    if template.id == "demo":
        return {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {
                    "width": int(v["width"]),
                    "height": int(v["height"]),
                    "batch_size": batch,
                    "color": int(v["color"]),
                },
            },
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": f"{prefix}/demo"},
            },
        }
    seed = int(v.get("seed", -1))
    if seed < 0:
        seed = random.randint(0, 2**53)
    latent = "EmptySD3LatentImage" if template.id == "flux_schnell" else "EmptyLatentImage"
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": v["model"]}},
        "5": {
            "class_type": latent,
            "inputs": {"width": int(v["width"]), "height": int(v["height"]), "batch_size": batch},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": v["prompt"], "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": v["negative"], "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": int(v["steps"]),
                "cfg": float(v["cfg"]),
                "sampler_name": v["sampler"],
                "scheduler": v["scheduler"],
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}/{template.id}"},
        },
    }


def build(template_id: str, raw: Mapping[str, Any], models: list[str] | None = None) -> dict[str, Any]:
    """Validate and fill; raises InvalidInput listing every bad field in `details.fields`."""
    template = TEMPLATES.get(template_id)
    if template is None:
        raise InvalidInput(f"unknown template {template_id!r}", hint="choose one of: " + ", ".join(TEMPLATES))
    values, errors = parse(template, raw, models)
    if errors:
        problems = [f"{name}: {problem}" for name, problem in errors.items()]
        raise InvalidInput(problems[0], hint="fix the marked fields", fields=errors, problems=problems)
    return graph(template, values)
