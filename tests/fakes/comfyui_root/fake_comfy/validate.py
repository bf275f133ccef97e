"""`POST /prompt` validation with ComfyUI 0.33's error types and shapes (COMFYUI.md §2 table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_KEYERROR_TRACEBACK = [
    '  File "COMFYUI_ROOT/execution.py", line 1184, in validate_prompt\n    m = await validate_inputs('
    "prompt_id, prompt, o, validated)\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    '  File "COMFYUI_ROOT/execution.py", line 933, in validate_inputs\n    o_class_type = prompt[o_id]'
    "['class_type']\n                   ~~~~~~^^^^^^\n",
]

Error = dict[str, Any]


def _err(kind: str, message: str, details: str = "", **extra: Any) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


class Validator:
    """Validates one prompt against the node definitions (`info(cls)` gives a filled definition)."""

    def __init__(
        self,
        prompt: dict[str, Any],
        info: Callable[[str], dict[str, Any]],
        custom: Callable[[str, str, Any], str | None],
    ) -> None:
        self.prompt = prompt
        self.info = info
        self.custom = custom  # (class, input, value) -> error text for VALIDATE_INPUTS-style checks
        self.validated: dict[str, tuple[bool, list[Error]]] = {}

    def node_level(self) -> Error | None:
        """missing class_type / unknown class: whole-prompt errors, checked first."""
        for node_id, node in self.prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return _err(
                    "missing_node_type",
                    f"Node 'ID #{node_id}' has no class_type. "
                    "The workflow may be corrupted or a custom node is missing.",
                    f"Node ID '#{node_id}'",
                    node_id=node_id,
                    class_type=None,
                    node_title=None,
                )
            cls = node["class_type"]
            if not self.info(cls):
                title = (node.get("_meta") or {}).get("title", cls)
                return _err(
                    "missing_node_type",
                    f"Node '{title}' not found. The custom node may not be installed.",
                    f"Node ID '#{node_id}'",
                    node_id=node_id,
                    class_type=cls,
                    node_title=title,
                )
        return None

    def outputs(self) -> list[str]:
        return [nid for nid, node in self.prompt.items() if self.info(node["class_type"]).get("output_node")]

    def validate(self, node_id: str) -> tuple[bool, list[Error]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        definition = self.info(node["class_type"])
        inputs = node.get("inputs") or {}
        errors: list[Error] = []
        valid = True
        specs = definition["input"]
        wanted = [(n, s, True) for n, s in specs.get("required", {}).items()]
        wanted += [(n, s, False) for n, s in specs.get("optional", {}).items()]
        for name, spec, required in wanted:
            if name not in inputs:
                if required:
                    errors.append(
                        _err("required_input_missing", "Required input is missing", name, input_name=name)
                    )
                    valid = False
                continue
            value = inputs[name]
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if is_link(value):
                src_id = str(value[0])
                try:
                    src_cls = self.prompt[src_id]["class_type"]
                except KeyError as exc:
                    errors.append(
                        _err(
                            "exception_during_validation",
                            "Exception when validating node",
                            str(exc),
                            exception_type="KeyError",
                            traceback=_KEYERROR_TRACEBACK,
                        )
                    )
                    valid = False
                    continue
                src_out = self.info(src_cls).get("output", [])
                idx = value[1]
                received = src_out[idx] if 0 <= idx < len(src_out) else None
                if (
                    isinstance(kind, str)
                    and received is not None
                    and "*" not in (kind, received)
                    and not _types_match(kind, received)
                ):
                    errors.append(
                        _err(
                            "return_type_mismatch",
                            "Return type mismatch between linked nodes",
                            f"{name}, received_type({received}) mismatch input_type({kind})",
                            input_name=name,
                            input_config=spec,
                            received_type=received,
                            linked_node=value,
                        )
                    )
                    valid = False
                    continue
                ok, _ = self.validate(src_id)
                if not ok:
                    valid = False
                continue
            error = self._value_error(node["class_type"], name, spec, kind, opts, value)
            if error is not None:
                errors.append(error)
                valid = False
        result = (valid, errors)
        self.validated[node_id] = result
        return result

    def _value_error(
        self, cls: str, name: str, spec: list[Any], kind: Any, opts: dict[str, Any], value: Any
    ) -> Error | None:
        custom = self.custom(cls, name, value)
        if custom is not None:
            return _err(
                "custom_validation_failed",
                "Custom validation failed for node",
                f"{name} - {custom}",
                input_name=name,
                input_config=spec,
                received_value=value,
            )
        if kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            conv: Any = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[kind]
            try:
                value = conv(value)
            except (TypeError, ValueError) as exc:
                return _err(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {kind} value",
                    f"{name}, {value}, {exc}",
                    input_name=name,
                    input_config=spec,
                    received_value=value,
                    exception_message=str(exc),
                )
            if kind in ("INT", "FLOAT"):
                if "min" in opts and value < opts["min"]:
                    return _err(
                        "value_smaller_than_min",
                        f"Value {value} smaller than min of {opts['min']}",
                        name,
                        input_name=name,
                        input_config=spec,
                        received_value=value,
                    )
                if "max" in opts and value > opts["max"]:
                    return _err(
                        "value_bigger_than_max",
                        f"Value {value} bigger than max of {opts['max']}",
                        name,
                        input_name=name,
                        input_config=spec,
                        received_value=value,
                    )
            return None
        choices: list[Any] | None = None
        if isinstance(kind, list):
            choices = kind
        elif kind == "COMBO":
            choices = opts.get("options", [])
        if choices is not None and value not in choices:
            config: Any = spec
            if len(choices) > 20:
                shown = f"(list of length {len(choices)})"
                config = None
            else:
                shown = str(choices)
            return _err(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{value}' not in {shown}",
                input_name=name,
                input_config=config,
                received_value=value,
            )
        return None


def _types_match(wanted: str, received: str) -> bool:
    a = set(wanted.split(","))
    b = set(received.split(","))
    return bool(a & b)


def validate_prompt(
    prompt: Any,
    info: Callable[[str], dict[str, Any]],
    custom: Callable[[str, str, Any], str | None],
    partial_targets: list[str] | None = None,
) -> tuple[Error | None, list[str], dict[str, Any]]:
    """(error, good_outputs, node_errors): error set means HTTP 400."""
    v = Validator(prompt, info, custom)
    error = v.node_level()
    if error is not None:
        return error, [], {}
    outputs = v.outputs()
    if partial_targets is not None:
        outputs = [o for o in outputs if o in partial_targets]
    if not outputs:
        return _err("prompt_no_outputs", "Prompt has no outputs"), [], {}
    good: list[str] = []
    failed: list[tuple[str, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    for out in outputs:
        ok, reasons = v.validate(out)
        if ok:
            good.append(out)
            continue
        failed.append((out, reasons))
        for nid, (nvalid, nreasons) in v.validated.items():
            if nvalid is not True and nreasons:
                entry = node_errors.setdefault(
                    nid,
                    {"errors": nreasons, "dependent_outputs": [], "class_type": prompt[nid]["class_type"]},
                )
                if out not in entry["dependent_outputs"]:
                    entry["dependent_outputs"].append(out)
    if not good:
        lines = [f"{e['message']}: {e['details']}" for _o, errs in failed for e in errs]
        return (
            _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines)),
            [],
            node_errors,
        )
    return None, good, node_errors
