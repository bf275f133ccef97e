"""Convert a workflow saved by ComfyUI's editor (UI format) into the prompt ComfyUI runs (API format).

The result equals what the editor's own "queue prompt" sends (`graphToPrompt` in ComfyUI's
front end): every executable node keyed by its id (`"68:10"` for node 10 inside the subgraph
instance 68), its `class_type`, its widget values named after the definition's inputs, its links
as `[origin id, output index]`, and `_meta.title`.

How the graph is resolved (subgraphs, bypassed and muted nodes, primitives, reroutes, named
wires) is links.py's, as the editor does it. A node whose class is unknown raises
`UnknownNodeError` (node id, title, class, node pack).

`unknown="keep"` reproduces the editor's form for unknown classes instead (no `class_type`,
widget values named `UNKNOWN`, `UNKNOWN_1`, ...), which ComfyUI then rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .graph import (
    MODE_BYPASS,
    MODE_NEVER,
    Dto,
    WorkflowError,
    is_valid_connection,
)
from .links import LinkResolver
from .nodetypes import FRONTEND_TITLES, MissingNode, UnknownNodeError, node_pack
from .prompts import process_dynamic_prompt
from .widgets import input_specs, spec_options, widget_kind


def is_api_format(workflow: Any) -> bool:
    """True for a prompt in the API format (`{"id": {"class_type": ..., "inputs": ...}}`)."""
    if not isinstance(workflow, Mapping) or not workflow or "nodes" in workflow:
        return False
    if isinstance(workflow.get("prompt"), Mapping):
        return is_api_format(workflow["prompt"])
    return all(isinstance(v, Mapping) and "class_type" in v for v in workflow.values())


class Converter(LinkResolver):
    def __init__(
        self,
        workflow: Mapping[str, Any],
        object_info: Mapping[str, Any],
        unknown: Literal["error", "keep"] = "error",
    ) -> None:
        super().__init__(workflow, object_info)
        self.unknown = unknown
        self.missing: list[MissingNode] = []

    # -- node serialisation -------------------------------------------------------------------

    def title(self, dto: Dto) -> str | None:
        title = dto.node.get("title")
        if isinstance(title, str) and title:
            return title
        ntype = dto.node.get("type") or ""
        definition = self.object_info.get(ntype)
        if definition is not None:
            if ntype in FRONTEND_TITLES:
                return FRONTEND_TITLES[ntype]
            return str(definition.get("display_name") or definition.get("name") or dto.node["type"])
        return None

    def serialize(self, dto: Dto) -> dict[str, Any] | None:
        ntype = dto.node.get("type")
        if self.is_virtual(dto) or dto.mode in (MODE_NEVER, MODE_BYPASS):
            return None
        definition = self.object_info.get(ntype) if isinstance(ntype, str) else None
        if definition is None:
            if self.unknown == "error":
                title = dto.node.get("title")
                self.missing.append(
                    MissingNode(
                        dto.exec_id,
                        title if isinstance(title, str) else None,
                        str(ntype),
                        node_pack(dto.node),
                    )
                )
                return None
            return self._serialize_unknown(dto)
        inputs: dict[str, Any] = {}
        for name, value in self.widget_values(dto).items():
            inputs[name] = self._api_value(definition, name, value)
        self._add_links(dto, inputs)
        meta: dict[str, Any] = {}
        title = self.title(dto)
        if title is not None:
            meta["title"] = title
        return {"inputs": inputs, "class_type": ntype, "_meta": meta}

    def _api_value(self, definition: Mapping[str, Any], name: str, value: Any) -> Any:
        if isinstance(value, str) and ("{" in value or "/" in value):
            for input_name, spec in input_specs(definition):
                if input_name == name and widget_kind(spec) == "STRING":
                    if spec_options(spec).get("dynamicPrompts"):
                        value = process_dynamic_prompt(value)
                    break
        if isinstance(value, list):
            return {"__value__": value}
        return value

    def _serialize_unknown(self, dto: Dto) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        values = dto.node.get("widgets_values")
        if isinstance(values, list):
            for i, value in enumerate(values):
                inputs["UNKNOWN" if i == 0 else f"UNKNOWN_{i}"] = (
                    {"__value__": value} if isinstance(value, list) else value
                )
        self._add_links(dto, inputs)
        title = dto.node.get("title")
        return {"inputs": inputs, "_meta": {"title": title} if title else {}}

    def _add_links(self, dto: Dto, inputs: dict[str, Any]) -> None:
        for i, slot in enumerate(dto.inputs):
            resolved = self.resolve_input(dto, i, set())
            if resolved is None:
                continue
            name = str(slot.get("name"))
            if resolved[0] == "value":
                value = resolved[1]
                inputs[name] = {"__value__": value} if isinstance(value, list) else value
            else:
                inputs[name] = [resolved[1], resolved[2]]

    def convert(self) -> dict[str, Any]:
        self.flatten()
        output: dict[str, Any] = {}
        for exec_id, dto in self.dtos.items():
            entry = self.serialize(dto)
            if entry is not None:
                output[exec_id] = entry
        if self.missing:
            raise UnknownNodeError(self.missing)
        for entry in output.values():
            inputs = entry["inputs"]
            for name in [n for n, v in inputs.items() if isinstance(v, list) and len(v) == 2]:
                if str(inputs[name][0]) not in output:
                    del inputs[name]
        return output


def convert(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    *,
    unknown: Literal["error", "keep"] = "error",
) -> dict[str, Any]:
    """The API prompt for a UI-format workflow, given ComfyUI's node definitions."""
    try:
        return Converter(workflow, object_info, unknown).convert()
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # a shape the checks above did not foresee: still the file's fault, never a crash
        raise WorkflowError(
            f"the workflow is malformed ({exc.__class__.__name__}: {exc})",
            hint="open it in ComfyUI's editor and save it again",
        ) from exc


def to_prompt(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """An API prompt from either format (an API prompt is returned as it is)."""
    if is_api_format(workflow):
        inner = workflow.get("prompt")
        return dict(inner) if isinstance(inner, Mapping) else dict(workflow)
    return convert(workflow, object_info)


__all__ = [
    "MODE_BYPASS",
    "MODE_NEVER",
    "Converter",
    "MissingNode",
    "UnknownNodeError",
    "WorkflowError",
    "convert",
    "is_api_format",
    "is_valid_connection",
    "node_pack",
    "to_prompt",
]
