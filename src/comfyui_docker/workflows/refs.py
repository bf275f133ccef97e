"""The model files a workflow needs, and which of them are missing on the volume.

Works on both formats:

- API prompts: each node's inputs are named, so `(class, input)` says which ComfyUI folder a
  value lives in (`UNETLoader.unet_name` -> `diffusion_models`, `CLIPVisionLoader.clip_name` ->
  `clip_vision`); unknown loaders fall back on the input name (`ckpt_name`, `lora_name`, ...).
- UI workflows: nodes of ComfyUI's official templates name their models, with a download URL
  and folder, in `properties.models` (`{name, url, directory}`), also inside subgraphs. Widget
  values are read through the converter when node definitions are given; without them, model
  file names in the widget values of known loader classes are used.

`missing_models(workflow, models_root)` lists what is not on the volume, with the URL the
workflow gives for it (so that it can be installed in one go).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..model_inputs import (
    CLASS_INPUT_FOLDERS,
    INPUT_FOLDERS,
    MODEL_EXTENSIONS,
    NOT_FILES,
    ModelRef,
    folder_for,
    is_file_value,
)
from ..model_paths import LEGACY_SUBFOLDERS, canonical_folder
from .convert import MODE_BYPASS, MODE_NEVER, WorkflowError, convert, is_api_format

__all__ = [  # the tables and ModelRef live in model_inputs.py; imported from here too
    "CLASS_INPUT_FOLDERS",
    "INPUT_FOLDERS",
    "MODEL_EXTENSIONS",
    "NOT_FILES",
    "ModelRef",
    "declared_models",
    "folder_for",
    "is_present",
    "missing_models",
    "model_refs",
    "prompt_models",
]


def _canonical(directory: Any) -> str | None:
    if not isinstance(directory, str) or not directory:
        return None
    name = directory.strip().strip("/")
    return canonical_folder(name)


def _prompt_refs(prompt: Mapping[str, Any]) -> Iterator[ModelRef]:
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping):
            continue
        class_type = str(node.get("class_type") or "")
        inputs = node.get("inputs")
        for input_name, value in inputs.items() if isinstance(inputs, Mapping) else []:
            folder = folder_for(class_type, input_name)
            if folder and is_file_value(value):
                yield ModelRef(folder, value, node_id=str(node_id), class_type=class_type, input=input_name)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _all_ui_nodes(workflow: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for node in _items(workflow.get("nodes")):
        if isinstance(node, Mapping):
            yield "", node
    defs = workflow.get("definitions")
    for sub in _items(defs.get("subgraphs")) if isinstance(defs, Mapping) else []:
        if isinstance(sub, Mapping):
            for node in _items(sub.get("nodes")):
                if isinstance(node, Mapping):
                    yield str(sub.get("id")), node


def declared_models(workflow: Mapping[str, Any], *, active_only: bool = True) -> list[ModelRef]:
    """The `properties.models` entries of a UI workflow's nodes (subgraphs included).

    Entries whose folder is not a ComfyUI folder keep the folder as written (callers report it).
    """
    out: list[ModelRef] = []
    for _graph, node in _all_ui_nodes(workflow):
        if active_only and node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        props = node.get("properties") or {}
        models = props.get("models") if isinstance(props, Mapping) else None
        for entry in models if isinstance(models, list) else []:
            if not isinstance(entry, Mapping) or not is_file_value(entry.get("name")):
                continue
            directory = entry.get("directory")
            folder = _canonical(directory) or (str(directory) if directory else "")
            url = entry.get("url") if isinstance(entry.get("url"), str) else None
            out.append(
                ModelRef(
                    folder,
                    str(entry["name"]),
                    url=url,
                    node_id=str(node.get("id")),
                    class_type=str(node.get("type") or ""),
                )
            )
    return out


#: Core loaders whose model widgets all select from one folder (read without definitions).
LOADER_FOLDERS: dict[str, str] = {
    "CheckpointLoaderSimple": "checkpoints",
    "ImageOnlyCheckpointLoader": "checkpoints",
    "unCLIPCheckpointLoader": "checkpoints",
    "LoraLoader": "loras",
    "LoraLoaderModelOnly": "loras",
    "VAELoader": "vae",
    "UNETLoader": "diffusion_models",
    "UnetLoaderGGUF": "diffusion_models",
    "CLIPLoader": "text_encoders",
    "DualCLIPLoader": "text_encoders",
    "TripleCLIPLoader": "text_encoders",
    "QuadrupleCLIPLoader": "text_encoders",
    "ControlNetLoader": "controlnet",
    "DiffControlNetLoader": "controlnet",
    "StyleModelLoader": "style_models",
    "CLIPVisionLoader": "clip_vision",
    "ModelPatchLoader": "model_patches",
    "UpscaleModelLoader": "upscale_models",
    "LatentUpscaleModelLoader": "latent_upscale_models",
    "AudioEncoderLoader": "audio_encoders",
    "GLIGENLoader": "gligen",
    "HypernetworkLoader": "hypernetworks",
    "PhotoMakerLoader": "photomaker",
}


def _ui_widget_refs(workflow: Mapping[str, Any]) -> Iterator[ModelRef]:
    """Model names in widget values of known loaders, read without node definitions."""
    for _graph, node in _all_ui_nodes(workflow):
        if node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        class_type = str(node.get("type") or "")
        node_id = str(node.get("id"))
        values = node.get("widgets_values")
        if isinstance(values, Mapping):
            for key, value in values.items():
                folder = folder_for(class_type, str(key))
                if folder and is_file_value(value):
                    yield ModelRef(folder, value, node_id=node_id, class_type=class_type, input=str(key))
            continue
        folder = LOADER_FOLDERS.get(class_type)
        if folder is None or not isinstance(values, list):
            continue
        for value in values:
            if is_file_value(value) and value.lower().endswith(MODEL_EXTENSIONS):
                yield ModelRef(folder, value, node_id=node_id, class_type=class_type)


def model_refs(workflow: Mapping[str, Any], object_info: Mapping[str, Any] | None = None) -> list[ModelRef]:
    """Every model file the workflow names, once per (folder, name), with a URL when it gives one."""
    if is_api_format(workflow):
        inner = workflow.get("prompt")
        return _unique(_prompt_refs(inner if isinstance(inner, Mapping) else workflow))
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError(
            "not a ComfyUI workflow: expected the UI format (with 'nodes') or an API prompt",
        )
    refs: list[ModelRef] = []
    if object_info is not None:
        try:
            refs.extend(_prompt_refs(convert(workflow, object_info, unknown="keep")))
        except WorkflowError:
            refs.extend(_ui_widget_refs(workflow))
    else:
        refs.extend(_ui_widget_refs(workflow))
    return _unique(_with_declared(refs, declared_models(workflow)))


def prompt_models(prompt: Mapping[str, Any], workflow: Mapping[str, Any] | None = None) -> list[ModelRef]:
    """The model files an API prompt loads, once each; given the UI workflow it was converted
    from, also the models that workflow declares, and their URLs."""
    refs = list(_prompt_refs(prompt))
    if workflow is not None and not is_api_format(workflow) and isinstance(workflow.get("nodes"), list):
        refs = _with_declared(refs, declared_models(workflow))
    return _unique(refs)


def _with_declared(refs: list[ModelRef], declared: list[ModelRef]) -> list[ModelRef]:
    """`refs` and the declared models after them, each with the URL a declaration gives for it."""
    urls = {(d.name, d.folder): d.url for d in declared if d.url}
    by_name = {d.name: d.url for d in declared if d.url}
    return [
        r if r.url else ModelRef(**{**asdict(r), "url": urls.get((r.name, r.folder)) or by_name.get(r.name)})
        for r in [*refs, *declared]
    ]


def _unique(refs: Iterable[ModelRef]) -> list[ModelRef]:
    """Once per (folder, name): the first reference, or the first that has a URL."""
    seen: dict[tuple[str, str], ModelRef] = {}
    for ref in refs:
        key = (ref.folder, ref.name)
        if key not in seen or (ref.url and not seen[key].url):
            seen[key] = ref
    return list(seen.values())


def is_present(models_root: Path, folder: str, name: str) -> bool:
    """Whether `models_root/<folder>/<name>` (or the folder's legacy twin) holds the file."""
    if not name or name.startswith("/") or ".." in Path(name).parts:
        return False
    subs = (folder, *LEGACY_SUBFOLDERS.get(folder, ()))
    return any((models_root / sub / name).is_file() for sub in subs)


def missing_models(
    workflow: Mapping[str, Any],
    models_root: Path,
    object_info: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The model files the workflow needs that are not on the volume.

    Each entry: `folder`, `name`, `present` (False), `url` (None unless the workflow names one),
    and where it was found (`node_id`, `class_type`, `input`).
    """
    out = []
    for ref in model_refs(workflow, object_info):
        present = is_present(models_root, ref.folder, ref.name)
        if not present:
            out.append(ModelRef(**{**asdict(ref), "present": False}).as_dict())
    return out
