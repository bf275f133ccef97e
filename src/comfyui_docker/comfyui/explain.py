"""ComfyUI's errors as lines a user can act on: by node title, class and input, never a traceback.

    rejection(body, prompt)          a 400 from POST /prompt (COMFYUI.md §2) -> PromptRejected
    execution_failure(data, prompt)  an `execution_error` frame or history message -> one line
                                     (plus what to do, for the failures we recognise)
    interruption(data, prompt)       an `execution_interrupted` one -> one line

Nodes are named like `node 4 (Load it, CheckpointLoaderSimple)`: id, title (`_meta.title` of the
prompt) and class. Server paths in ComfyUI's texts are removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..model_inputs import ModelRef, folder_for
from .errors import PromptRejected, scrub_object
from .shapes import JsonObject, as_object

_PATH_RE = re.compile(r"(/[\w.\-]+)+/")
MAX_CHOICES = 8


def _clean(text: object) -> str:
    return _PATH_RE.sub("", str(text or "")).strip()


def node_label(prompt: Mapping[str, object], node_id: object, class_type: object = None) -> str:
    """`node 2 (Scale it, ImageScale)`; the class alone when the node has no other title."""
    node = as_object(prompt.get(str(node_id)))
    title = as_object(node.get("_meta")).get("title")
    cls = node.get("class_type") or class_type
    if title and cls and title != cls:
        return f"node {node_id} ({title}, {cls})"
    return f"node {node_id} ({title or cls or '?'})"


def _class_of(prompt: Mapping[str, object], node_id: str, info: JsonObject) -> str:
    return str(as_object(prompt.get(node_id)).get("class_type") or info.get("class_type") or "")


def _choices(extra: JsonObject) -> str:
    config = extra.get("input_config")
    offered = config[0] if isinstance(config, list) and config and isinstance(config[0], list) else []
    if not offered:
        return ""
    shown = ", ".join(str(c) for c in offered[:MAX_CHOICES])
    return f" (offered: {shown}{', ...' if len(offered) > MAX_CHOICES else ''})"


def _input_problem(item: JsonObject, class_type: str) -> str:
    """What is wrong with one input, without the node's name."""
    kind = str(item.get("type") or "")
    extra = as_object(item.get("extra_info"))
    name = str(extra.get("input_name") or "")
    value = extra.get("received_value")
    message = _clean(item.get("message")) or kind or "invalid"
    details = _clean(item.get("details"))
    if kind == "required_input_missing":
        return "is not connected and has no value"
    if kind == "value_not_in_list":
        folder = folder_for(class_type, name)
        if folder:
            return f"the model {value!r} is not installed (expected in models/{folder})"
        return f"{value!r} is not one of the choices ComfyUI offers{_choices(extra)}"
    if kind in ("value_smaller_than_min", "value_bigger_than_max"):
        return message[:1].lower() + message[1:]
    if kind == "invalid_input_type":
        return f"got {value!r}, which has the wrong type ({message[:1].lower() + message[1:]})"
    if kind == "exception_during_validation":
        if extra.get("exception_type") == "KeyError":
            return f"links to node {details or '?'}, which is not in the workflow"
        return f"{message}: {details}" if details else message
    return f"{message}: {details}" if details and details != name else message


def _top_level(error: JsonObject, prompt: Mapping[str, object]) -> str | None:
    kind = str(error.get("type") or "")
    extra = as_object(error.get("extra_info"))
    if kind == "missing_node_type":
        node_id = extra.get("node_id") or "?"
        cls = extra.get("class_type")
        if cls:
            return (
                f"{node_label(prompt, node_id, cls)}: the node type {cls!r} is not installed in ComfyUI; "
                "install the custom node pack that provides it (for example with ComfyUI-Manager), "
                "then restart ComfyUI"
            )
        return (
            f"node {node_id} has no class_type: the workflow may be damaged, "
            "or it is not in ComfyUI's API format"
        )
    if kind == "prompt_no_outputs":
        return "the workflow has no output node (such as Save Image), so it would produce nothing"
    if kind == "no_prompt":
        return "no workflow was sent to ComfyUI"
    if kind == "invalid_prompt_id":
        return "the prompt id is not a canonical UUID"
    return None


def problems(body: object, prompt: Mapping[str, object]) -> list[str]:
    """One line per problem in ComfyUI's answer to POST /prompt."""
    data = as_object(body)
    error = as_object(data.get("error"))
    lines: list[str] = []
    top = _top_level(error, prompt)
    if top:
        lines.append(top)
    for node_id, info in as_object(data.get("node_errors")).items():
        node = as_object(info)
        class_type = _class_of(prompt, str(node_id), node)
        for item in node.get("errors") or ():
            if not isinstance(item, dict):
                continue
            where = node_label(prompt, node_id, class_type)
            name = as_object(item.get("extra_info")).get("input_name")
            if name:
                where += f" input {name!r}"
            lines.append(f"{where}: {_input_problem(item, class_type)}")
    if not lines:
        message = _clean(error.get("message")) or "ComfyUI refused the prompt without saying why"
        details = _clean(error.get("details"))
        lines.append(f"{message}: {details}" if details and details != message else message)
    return lines


def missing_models(body: object, prompt: Mapping[str, object]) -> list[ModelRef]:
    """The model files ComfyUI said it does not have (a model input whose value is not offered)."""
    out: list[ModelRef] = []
    for node_id, info in as_object(as_object(body).get("node_errors")).items():
        node = as_object(info)
        class_type = _class_of(prompt, str(node_id), node)
        for item in node.get("errors") or ():
            extra = as_object(as_object(item).get("extra_info"))
            name = str(extra.get("input_name") or "")
            folder = folder_for(class_type, name)
            value = extra.get("received_value")
            if as_object(item).get("type") != "value_not_in_list" or not folder or not value:
                continue
            ref = ModelRef(folder, str(value), node_id=str(node_id), class_type=class_type, input=name)
            if all((m.folder, m.name) != (ref.folder, ref.name) for m in out):
                out.append(ref)
    return out


def rejection(body: object, prompt: Mapping[str, object]) -> PromptRejected:
    """The error for ComfyUI's 400 answer to POST /prompt (any body, even not JSON)."""
    data = as_object(body)
    return PromptRejected(
        problems(data, prompt),
        missing_models(data, prompt),
        scrub_object(data.get("error")),
        scrub_object(data.get("node_errors")),
    )


#: Failures whose cause a user can act on, by a phrase of ComfyUI's message -> what to do.
EXECUTION_HINTS = (
    (
        "Error while deserializing header",
        "the model file is not a valid safetensors file (a corrupt or incomplete download): "
        "delete it and install it again",
    ),
    (
        "Could not detect model type",
        "the file is not a checkpoint this loader knows: check it is in the right models folder",
    ),
)


def execution_failure(data: Mapping[str, object], prompt: Mapping[str, object]) -> str:
    """`node 1 (Load it, CheckpointLoaderSimple) failed: SafetensorError: ...` and any hint."""
    where = node_label(prompt, data.get("node_id"), data.get("node_type"))
    kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]  # SafetensorError, not its module
    message = _clean(data.get("exception_message"))
    text = f"{where} failed: {kind}: {message}" if message else f"{where} failed: {kind}"
    hints = [hint for phrase, hint in EXECUTION_HINTS if phrase in message]
    return text + "".join(f"\n  -> {hint}" for hint in hints)


def interruption(data: Mapping[str, object], prompt: Mapping[str, object]) -> str:
    node_id = data.get("node_id")
    if node_id is None:
        return "the run was interrupted"
    return f"the run was interrupted at {node_label(prompt, node_id, data.get('node_type'))}"
