"""Set inputs of an API prompt by node title or id, checked against the node definitions.

    --set "KSampler.seed=42"            node titled (or of class) KSampler, input seed
    --set "Positive Prompt.text=a cat"  titles may contain spaces (and dots)
    --set "12.steps=30" / "68:10.cfg=5" node ids, subgraph nodes included
    --set "Resize.resize_type.width=768"  inputs of dynamic combos have dotted names

The value is checked like ComfyUI checks it: INT/FLOAT (numbers within min/max), BOOLEAN
(true/false/1/0/yes/no/on/off), STRING, and combos (one of the offered choices; a model file
input such as `ckpt_name` accepts any name, since the missing-models check covers it). Setting an
input that is linked to another node is refused with the node to set instead.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from .refs import folder_for
from .widgets import DYNAMIC_COMBO, combo_choices, input_specs, spec_options, spec_type, widget_kind

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class ParameterError(InvalidInput):
    code = "invalid_parameter"


@dataclass(frozen=True)
class Change:
    node_id: str
    title: str
    input: str
    old: Any
    new: Any


def parse_assignment(text: str) -> tuple[str, str]:
    """'Node.input=value' -> ('Node.input', 'value')."""
    target, sep, raw = text.partition("=")
    if not sep or "." not in target or not target.strip(".").strip():
        raise ParameterError(
            f"cannot read {text!r}",
            hint='write NODE.INPUT=VALUE, NODE being a title or id: --set "KSampler.seed=42"',
        )
    return target.strip(), raw


def _title(node: Mapping[str, Any]) -> str:
    meta = node.get("_meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("title"), str):
        return str(meta["title"])
    return str(node.get("class_type") or "")


def find_nodes(prompt: Mapping[str, Any], selector: str) -> list[str]:
    """Ids of the nodes a selector names: an id, else an exact title, else a class name."""
    if selector in prompt:
        return [selector]
    by_title = [nid for nid, node in prompt.items() if _title(node) == selector]
    if by_title:
        return by_title
    folded = [nid for nid, node in prompt.items() if _title(node).casefold() == selector.casefold()]
    if folded:
        return folded
    return [nid for nid, node in prompt.items() if node.get("class_type") == selector]


def input_spec(definition: Mapping[str, Any], name: str, current: Mapping[str, Any]) -> list[Any] | None:
    """The spec of an input, dynamic-combo sub-inputs ('mode.width') included."""
    for input_name, spec in input_specs(definition):
        if input_name == name:
            return spec
        if spec_type(spec) == DYNAMIC_COMBO and name.startswith(input_name + "."):
            selected = current.get(input_name)
            for option in spec_options(spec).get("options") or []:
                if isinstance(option, Mapping) and option.get("key") == selected:
                    sub = {"input": option.get("inputs") or {}}
                    found = input_spec(sub, name[len(input_name) + 1 :], {})
                    if found is not None:
                        return found
    return None


def coerce(spec: list[Any], raw: Any, label: str) -> Any:
    """`raw` (text from the command line, or a JSON value) as the type the spec asks for."""
    kind = widget_kind(spec)
    opts = spec_options(spec)
    if kind == "INT":
        value = _number(raw, label, integer=True)
    elif kind == "FLOAT":
        value = _number(raw, label, integer=False)
    elif kind == "BOOLEAN":
        value = _boolean(raw, label)
    elif kind == "COMBO":
        choices = combo_choices(spec) or []
        value = _combo(raw, choices) if isinstance(raw, str) else raw
        if choices and value not in choices:
            raise ParameterError(
                f"{label}: {raw!r} is not one of the choices", hint=_choices_hint(str(raw), choices)
            )
        return value
    elif kind == "STRING":
        return raw if isinstance(raw, str) else str(raw)
    else:  # widgets of custom types (colors, boxes, curves): taken as given
        return raw
    low, high = opts.get("min"), opts.get("max")
    if isinstance(low, (int, float)) and value < low:
        raise ParameterError(f"{label}: {value} is smaller than the minimum {low}")
    if isinstance(high, (int, float)) and value > high:
        raise ParameterError(f"{label}: {value} is larger than the maximum {high}")
    return value


def _number(raw: Any, label: str, *, integer: bool) -> int | float:
    if isinstance(raw, bool):
        raise ParameterError(f"{label} takes a number, not {raw!r}")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value: int | float = raw
    else:
        text = str(raw).strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                kind = "a whole number" if integer else "a number"
                raise ParameterError(f"{label} takes {kind}, not {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{label} takes a finite number, not {raw!r}")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise ParameterError(f"{label} takes a whole number, not {raw!r}")
            value = int(value)
        return value
    return value


def _boolean(raw: Any, label: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ParameterError(f"{label} takes true or false, not {raw!r}")


def _combo(raw: str, choices: list[Any]) -> Any:
    for choice in choices:  # "1024" for a numeric combo choice
        if str(choice) == raw:
            return choice
    return raw


def _choices_hint(raw: str, choices: list[Any]) -> str:
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(raw, names, n=3, cutoff=0.4)
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(c) for c in names[:8]) + (", ..." if len(names) > 8 else "")
    return f"choices: {shown}"


def _resolve_target(prompt: Mapping[str, Any], target: str) -> tuple[list[str], str]:
    """Split 'selector.input' where the selector matches nodes (titles may contain dots)."""
    positions = [i for i, c in enumerate(target) if c == "."]
    for pos in positions:
        selector, name = target[:pos], target[pos + 1 :]
        ids = find_nodes(prompt, selector)
        if ids and name:
            return ids, name
    selector = target.rsplit(".", 1)[0]
    known = sorted({_title(n) for n in prompt.values()})
    close = difflib.get_close_matches(selector, known, n=3, cutoff=0.5)
    raise ParameterError(
        f"no node titled {selector!r} (or with that id or class)",
        hint=("did you mean " + ", ".join(repr(c) for c in close) + "?")
        if close
        else "node titles: " + ", ".join(known[:12]),
    )


def set_input(
    prompt: dict[str, Any], object_info: Mapping[str, Any], node_id: str, name: str, raw: Any
) -> Change:
    """Set one input of one node after checking it; returns what changed."""
    node = prompt[node_id]
    title = _title(node)
    label = f"{title} (node {node_id}).{name}"
    class_type = node.get("class_type")
    definition = object_info.get(class_type) if isinstance(class_type, str) else None
    inputs = node.setdefault("inputs", {})
    if definition is None:
        raise ParameterError(
            f"{label}: the node class {class_type!r} is not installed; its inputs cannot be checked"
        )
    spec = input_spec(definition, name, inputs)
    if spec is None:
        names = [n for n, s in input_specs(definition) if widget_kind(s) is not None]
        close = difflib.get_close_matches(name, names, n=3)
        raise ParameterError(
            f"{title} (node {node_id}, {class_type}) has no input {name!r}",
            hint=("did you mean " + ", ".join(repr(c) for c in close) + "?")
            if close
            else "inputs: " + ", ".join(names),
        )
    current = inputs.get(name)
    if isinstance(current, list) and len(current) == 2 and isinstance(current[0], str):
        source = prompt.get(current[0]) or {}
        raise ParameterError(
            f"{label} is linked from node {current[0]} ({_title(source)}); it has no value of its own",
            hint=f'set that node instead, e.g. --set "{current[0]}.<input>=..."',
        )
    if widget_kind(spec) is None:
        raise ParameterError(f"{label} takes a link from another node, not a value")
    if isinstance(class_type, str) and folder_for(class_type, name) and isinstance(raw, str) and raw:
        # a model file: the server's choices list only what is installed; the missing-models
        # check reports (and --install-missing fetches) a file that is not there yet
        value: Any = raw
    else:
        value = coerce(spec, raw, label)
    inputs[name] = value
    return Change(node_id, title, name, current, value)


def apply_sets(
    prompt: Mapping[str, Any], object_info: Mapping[str, Any], assignments: Iterable[str]
) -> tuple[dict[str, Any], list[Change]]:
    """A copy of `prompt` with every `NODE.INPUT=VALUE` applied (all checked before returning)."""
    out = copy.deepcopy(dict(prompt))
    changes: list[Change] = []
    for text in assignments:
        target, raw = parse_assignment(text)
        ids, name = _resolve_target(out, target)
        if len(ids) > 1:
            raise ParameterError(
                f"{target.rsplit('.', 1)[0]!r} names {len(ids)} nodes ({', '.join(ids)})",
                hint=f'use the node id instead, e.g. --set "{ids[0]}.{name}={raw}"',
            )
        changes.append(set_input(out, object_info, ids[0], name, raw))
    return out, changes


def apply_values(
    prompt: Mapping[str, Any], object_info: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Change]]:
    """Like `apply_sets`, for typed values from a form or JSON: `{"NODE.INPUT": value}`."""
    out = copy.deepcopy(dict(prompt))
    changes = []
    for target, raw in values.items():
        ids, name = _resolve_target(out, target)
        if len(ids) > 1:
            raise ParameterError(f"{target!r} names {len(ids)} nodes ({', '.join(ids)}); use a node id")
        changes.append(set_input(out, object_info, ids[0], name, raw))
    return out, changes


#: What a form needs to offer for a workflow: kind -> input names (any class).
MAIN_INPUTS = {
    "prompt": ("text", "prompt", "positive_prompt", "negative_prompt"),
    "seed": ("seed", "noise_seed"),
    "size": ("width", "height", "length", "batch_size"),
    "steps": ("steps", "cfg"),
}
#: Loader nodes whose file input is an upload (class -> input).
UPLOAD_INPUTS = {"LoadImage": "image", "LoadImageMask": "image", "LoadVideo": "file", "LoadAudio": "audio"}


def main_inputs(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The inputs a simple form should offer (prompt texts, seeds, sizes, steps, uploads).

    Each entry: `key` ("NODE.INPUT", for `apply_values`), `node_id`, `title`, `class_type`,
    `input`, `kind`, `value`, and from the definition `type`, `min`, `max`, `choices`, `multiline`.
    Linked inputs are left out (their value comes from another node).
    """
    out = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        definition = object_info.get(class_type) if isinstance(class_type, str) else None
        if definition is None:
            continue
        inputs = node.get("inputs") or {}
        for name, value in inputs.items():
            if isinstance(value, list):
                continue
            kind = next((k for k, names in MAIN_INPUTS.items() if name in names), None)
            if UPLOAD_INPUTS.get(str(class_type)) == name:
                kind = "upload"
            spec = input_spec(definition, name, inputs) if kind else None
            if spec is None or (kind == "prompt" and widget_kind(spec) != "STRING"):
                continue
            opts = spec_options(spec)
            out.append(
                {
                    "key": f"{node_id}.{name}",
                    "node_id": node_id,
                    "title": _title(node),
                    "class_type": class_type,
                    "input": name,
                    "kind": kind,
                    "value": value,
                    "type": widget_kind(spec),
                    "min": opts.get("min"),
                    "max": opts.get("max"),
                    "choices": combo_choices(spec) if kind == "upload" else None,
                    "multiline": bool(opts.get("multiline")),
                }
            )
    return out
