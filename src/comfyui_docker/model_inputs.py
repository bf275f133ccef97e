"""Which node inputs name model files, and in which ComfyUI folder they live.

Shared by the workflow tools (`workflows/refs.py`: what a workflow needs) and the ComfyUI gateway
(`comfyui/explain.py`: which of ComfyUI's "value not in list" answers are a missing model).

    folder_for(class_type, input)   the folder an input selects a file from, or None
    is_file_value(value)            whether a widget value names a file (not "none", "pixel_space")
    ModelRef                        one model file a workflow names: folder, name, and where
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".pt2", ".onnx")

#: (class, input) -> folder, for core loaders whose input name alone is ambiguous or unusual.
CLASS_INPUT_FOLDERS: dict[tuple[str, str], str] = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("CheckpointLoader", "config_name"): "configs",
    ("DiffusersLoader", "model_path"): "diffusers",
    ("ModelPatchLoader", "name"): "model_patches",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("FrameInterpolationModelLoader", "model_name"): "frame_interpolation",
    ("OpticalFlowLoader", "model_name"): "optical_flow",
    ("LoadDA3Model", "model_name"): "geometry_estimation",
    ("LoadMoGeModel", "model_name"): "geometry_estimation",
    ("LoadBackgroundRemovalModel", "bg_removal_name"): "background_removal",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("LTXAVTextEncoderLoader", "text_encoder"): "text_encoders",
    ("LTXAVTextEncoderLoader", "ckpt_name"): "checkpoints",
    ("LTXVAudioVAELoader", "ckpt_name"): "checkpoints",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("GLIGENLoader", "gligen_name"): "gligen",
}

#: input name -> folder, for any class (custom loaders mostly follow core names).
INPUT_FOLDERS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "clip_name4": "text_encoders",
    "text_encoder": "text_encoders",
    "control_net_name": "controlnet",
    "upscale_model_name": "upscale_models",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "photomaker_model_name": "photomaker",
    "audio_encoder_name": "audio_encoders",
}

#: Values that name no file (VAELoader's built-in choices, empty combos).
NOT_FILES = frozenset({"", "none", "None", "pixel_space", "taesd", "taesdxl", "taesd3", "taef1"})


@dataclass(frozen=True)
class ModelRef:
    folder: str  # canonical ComfyUI folder under models/
    name: str  # file name, may contain "/" for sub-folders
    url: str | None = None
    node_id: str | None = None
    class_type: str | None = None
    input: str | None = None
    present: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_file_value(value: Any) -> bool:
    return isinstance(value, str) and value not in NOT_FILES


def folder_for(class_type: str, input_name: str) -> str | None:
    """The ComfyUI folder an input of this class selects a file from, when known."""
    return CLASS_INPUT_FOLDERS.get((class_type, input_name)) or INPUT_FOLDERS.get(input_name)
