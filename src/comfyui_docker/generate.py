"""Built-in text-to-image templates in ComfyUI's API format, and readable ComfyUI errors.

Templates: `demo` (EmptyImage -> SaveImage, needs no model: tries the whole flow on any pod),
`sd15`, `sdxl` and `flux_schnell` (checkpoint -> prompts -> KSampler -> decode -> SaveImage).
`build(template_id, raw_values)` validates the form values against the template's fields and
returns the graph; every problem is reported at once. `explain(body)` turns a 400 from ComfyUI's
`POST /prompt` (shapes in COMFYUI.md §2) into sentences a user can act on, and
`missing_models(body)` lists model files ComfyUI said it does not have.
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
MODEL_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "unet_name": "diffusion_models",
    "lora_name": "loras",
    "vae_name": "vae",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "control_net_name": "controlnet",
    "model_name": "upscale_models",
}


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
        first = next(iter(errors.items()))
        raise InvalidInput(f"{first[0]}: {first[1]}", hint="fix the marked fields", fields=errors)
    return graph(template, values)


# ---- ComfyUI's validation errors, made readable ------------------------------------------

_PATH_RE = re.compile(r"(/[\w.\-]+)+/")


def _clean(text: Any) -> str:
    return _PATH_RE.sub("", str(text or "")).strip()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def explain(body: Any) -> list[str]:
    """Sentences for a 400 from POST /prompt; never leaks tracebacks or server paths."""
    if not isinstance(body, dict):
        return ["ComfyUI refused the workflow without saying why (see the ComfyUI log on the Pro page)."]
    out: list[str] = []
    err = _dict(body.get("error"))
    etype = str(err.get("type", ""))
    extra = _dict(err.get("extra_info"))
    if etype == "missing_node_type":
        cls = extra.get("class_type")
        if cls:
            out.append(
                f"The node type '{cls}' is not installed in ComfyUI. Install the custom node that provides "
                "it (for example with ComfyUI-Manager), then restart ComfyUI from the Pro page."
            )
        else:
            out.append(
                f"A node has no type ({_clean(err.get('details')) or 'class_type missing'}): the file may be "
                "damaged, or it is not in ComfyUI's API format."
            )
    elif etype == "prompt_no_outputs":
        out.append("The workflow has no output node (such as Save Image), so it would produce nothing.")
    elif etype == "no_prompt":
        out.append("No workflow was sent to ComfyUI.")
    elif etype == "invalid_prompt_id":
        out.append("The prompt id is not a valid UUID.")
    nodes = _dict(body.get("node_errors"))
    for node_id, node in nodes.items():
        if not isinstance(node, dict):
            continue
        cls = node.get("class_type", "?")
        for e in node.get("errors") or []:
            if isinstance(e, dict):
                out.append(_node_error(str(node_id), str(cls), e))
    if not out:
        msg = _clean(err.get("message")) or "ComfyUI refused the workflow"
        details = _clean(err.get("details"))
        out.append(f"{msg}{': ' + details if details else ''}.")
    return out


def _node_error(node_id: str, cls: str, e: dict[str, Any]) -> str:
    etype = str(e.get("type", ""))
    info = _dict(e.get("extra_info"))
    name = str(info.get("input_name", "?"))
    value = info.get("received_value")
    where = f"Node #{node_id} ({cls})"
    if etype == "required_input_missing":
        return f"{where}: the input '{name}' is not connected or has no value."
    if etype == "value_not_in_list":
        if name in MODEL_INPUTS:
            return f"{where}: the model '{value}' is not installed (expected in models/{MODEL_INPUTS[name]})."
        return f"{where}: '{value}' is not one of the choices ComfyUI offers for '{name}'."
    if etype in ("value_smaller_than_min", "value_bigger_than_max"):
        return f"{where}: '{name}' {_clean(e.get('message')).lower() or 'is out of range'}."
    if etype == "invalid_input_type":
        return f"{where}: '{name}' got {value!r}, which has the wrong type."
    if etype == "exception_during_validation":
        why = _clean(e.get("details")) or "check its connections"
        return f"{where}: a link points to a node that is not in the workflow ({why})."
    more = f" — {_clean(e.get('details'))}" if e.get("details") else ""
    return f"{where}: {_clean(e.get('message')) or etype}{more}."


def missing_models(body: Any) -> list[dict[str, str]]:
    """[{folder, name}] for every model value ComfyUI said it does not have."""
    out: list[dict[str, str]] = []
    if not isinstance(body, dict) or not isinstance(body.get("node_errors"), dict):
        return out
    for node in body["node_errors"].values():
        for e in (node or {}).get("errors") or []:
            info = (e or {}).get("extra_info") or {}
            name = info.get("input_name")
            if e.get("type") == "value_not_in_list" and name in MODEL_INPUTS:
                item = {"folder": MODEL_INPUTS[name], "name": str(info.get("received_value", ""))}
                if item not in out:
                    out.append(item)
    return out
