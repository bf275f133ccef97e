"""Convert a workflow saved by ComfyUI's editor (UI format) into the prompt ComfyUI runs (API format).

The result equals what the editor's own "queue prompt" sends (`graphToPrompt` in ComfyUI's
front end): every executable node keyed by its id (`"68:10"` for node 10 inside the subgraph
instance 68), its `class_type`, its widget values named after the definition's inputs, its links
as `[origin id, output index]`, and `_meta.title`.

How the graph is resolved, as the editor does it:

- Nodes without a definition that the editor draws itself (notes, reroutes, primitive nodes,
  KJNodes' SetNode/GetNode named wires) are never sent. A primitive node first copies its value
  into the widgets it feeds; a GetNode continues from the SetNode of the same name.
- A muted node (mode 2) is not sent, and inputs linked to it are dropped.
- A bypassed node (mode 4) is not sent; a link from one of its outputs continues from its input
  of the matching type (the input with the same index when its type fits, else the first input
  of exactly that type, else the first compatible one).
- A subgraph instance is replaced by the nodes of its definition (recursively); links entering
  through the subgraph's inputs continue outside, or take the instance's widget value when the
  outside slot is not connected.
- A node whose class is unknown raises `UnknownNodeError` (node id, title, class, node pack).

`unknown="keep"` reproduces the editor's form for unknown classes instead (no `class_type`,
widget values named `UNKNOWN`, `UNKNOWN_1`, ...), which ComfyUI then rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidInput
from .prompts import process_dynamic_prompt
from .widgets import control_default, input_specs, layout_values, spec_options, widget_kind

MODE_NEVER = 2
MODE_BYPASS = 4
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20

#: Node types the editor draws itself and never sends to ComfyUI (no class on the server).
VIRTUAL_TYPES = frozenset(
    {
        "Note",
        "MarkdownNote",
        "Reroute",
        "PrimitiveNode",
        "Label (rgthree)",
        "Fast Groups Muter (rgthree)",
        "Fast Groups Bypasser (rgthree)",
        "Fast Muter (rgthree)",
        "Fast Bypasser (rgthree)",
        "Bookmark (rgthree)",
        "SetNode",
        "GetNode",
    }
)

#: Node names the editor (comfyui-frontend-package 1.49.6) shows from its own translations where
#: they differ from the server's `display_name`; a node without its own title is titled so.
FRONTEND_TITLES = {
    "LTXVConcatAVLatent": "LTXVConcatAVLatent",
    "LTXVSeparateAVLatent": "LTXVSeparateAVLatent",
    "ByteDanceSeedreamNodeV2": "ByteDance Seedream 4.5 & 5.0",
    "ByteDance2ReferenceNode": "ByteDance Seedance 2.5 Reference to Video",
    "TopazImageEnhance": "Topaz Image Enhance",
    "IdeogramPImage": "Ideogram P-Image",
}


class WorkflowError(InvalidInput):
    """The workflow cannot be converted (malformed graph, broken link, loop)."""

    code = "invalid_workflow"


#: Node packs of a few widely used classes whose saved nodes often lack `cnr_id`.
KNOWN_PACKS = {
    "GetImageSizeAndCount": "comfyui-kjnodes",
    "ImageResizeKJ": "comfyui-kjnodes",
    "SetNode": "comfyui-kjnodes",
    "GetNode": "comfyui-kjnodes",
    "ImageRemoveAlpha+": "comfyui_essentials",
    "ImageResize+": "comfyui_essentials",
    "GetImageSize+": "comfyui_essentials",
    "AILab_QwenVL": "comfyui-qwenvl",
    "VHS_VideoCombine": "comfyui-videohelpersuite",
    "VHS_LoadVideo": "comfyui-videohelpersuite",
}


@dataclass(frozen=True)
class MissingNode:
    node_id: str
    title: str | None
    class_type: str
    pack: str | None

    def describe(self) -> str:
        where = f"node {self.node_id}" + (
            f" ({self.title!r})" if self.title and self.title != self.class_type else ""
        )
        provided = f" (node pack {self.pack!r})" if self.pack else ""
        return f"{where}: class {self.class_type!r}{provided}"


class UnknownNodeError(WorkflowError):
    """Nodes whose class is not installed in this ComfyUI (the first one in the attributes)."""

    code = "unknown_node_type"

    def __init__(self, missing: list[MissingNode]) -> None:
        first = missing[0]
        classes = sorted({m.class_type for m in missing})
        packs = sorted({m.pack for m in missing if m.pack})
        message = f"{len(missing)} node(s) use classes this ComfyUI does not have: " + "; ".join(
            m.describe() for m in missing
        )
        hint = (
            "install the node pack(s) " + ", ".join(repr(p) for p in packs) + " and restart ComfyUI"
            if packs
            else "install the custom node pack(s) that provide "
            + ", ".join(repr(c) for c in classes)
            + " and restart ComfyUI"
        )
        super().__init__(
            message,
            hint=hint,
            nodes=[m.__dict__ for m in missing],
        )
        self.missing = missing
        self.node_id = first.node_id
        self.title = first.title
        self.class_type = first.class_type
        self.pack = first.pack


@dataclass(frozen=True)
class Link:
    id: int
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int
    type: Any


@dataclass
class Graph:
    """The root graph or one subgraph definition."""

    key: str  # "" for the root, else the subgraph id
    nodes: dict[int, dict[str, Any]]
    links: dict[int, Link]
    definition: dict[str, Any] | None = None  # the subgraph definition (inputs/outputs)
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)  # primitive node values


@dataclass
class Dto:
    """One node of the flattened graph (an instance of a node at a subgraph path)."""

    exec_id: str
    path: tuple[str, ...]  # ids of the enclosing subgraph instances
    node: dict[str, Any]
    graph: Graph
    instance: Dto | None  # the subgraph instance containing this node
    inner: Graph | None = None  # for subgraph instances: their definition

    @property
    def mode(self) -> int:
        """The node's mode.

        Nodes inside a muted or bypassed subgraph instance of the root graph inherit its mode
        (the editor leaves them out); an instance nested deeper does not pass its mode down.
        """
        own = self.node.get("mode") or 0
        own = own if isinstance(own, int) else 0
        if own in (MODE_NEVER, MODE_BYPASS) or self.instance is None:
            return own
        top = self.instance
        while top.instance is not None:
            top = top.instance
        top_mode = top.node.get("mode")
        return top_mode if top_mode in (MODE_NEVER, MODE_BYPASS) else own

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return self.node.get("inputs") or []


def is_api_format(workflow: Any) -> bool:
    """True for a prompt in the API format (`{"id": {"class_type": ..., "inputs": ...}}`)."""
    if not isinstance(workflow, Mapping) or not workflow or "nodes" in workflow:
        return False
    if isinstance(workflow.get("prompt"), Mapping):
        return is_api_format(workflow["prompt"])
    return all(isinstance(v, Mapping) and "class_type" in v for v in workflow.values())


def node_pack(node: Mapping[str, Any]) -> str | None:
    """The node pack a saved node names (`cnr_id`, else `aux_id`), or a known one for its class."""
    props = node.get("properties") or {}
    if isinstance(props, Mapping):
        for key in ("cnr_id", "aux_id"):
            value = props.get(key)
            if isinstance(value, str) and value and value != "comfy-core":
                return value
    ntype = node.get("type")
    return KNOWN_PACKS.get(ntype) if isinstance(ntype, str) else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"not a node id or slot number: {value!r}") from None


def _parse_links(raw: Any) -> dict[int, Link]:
    links: dict[int, Link] = {}
    for item in raw or []:
        if isinstance(item, Mapping):
            link = Link(
                _int(item.get("id")),
                _int(item.get("origin_id")),
                _int(item.get("origin_slot")),
                _int(item.get("target_id")),
                _int(item.get("target_slot")),
                item.get("type"),
            )
        elif isinstance(item, (list, tuple)) and len(item) >= 5:
            link = Link(
                _int(item[0]),
                _int(item[1]),
                _int(item[2]),
                _int(item[3]),
                _int(item[4]),
                item[5] if len(item) > 5 else None,
            )
        else:
            continue
        links[link.id] = link
    return links


def _parse_graph(key: str, data: Mapping[str, Any], definition: dict[str, Any] | None) -> Graph:
    nodes: dict[int, dict[str, Any]] = {}
    for node in data.get("nodes") or []:
        if not isinstance(node, dict) or "id" not in node:
            raise WorkflowError("a node has no id; the file is not a ComfyUI workflow")
        nodes[_int(node["id"])] = node
    return Graph(key, nodes, _parse_links(data.get("links")), definition)


def _subgraph_definitions(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    pending = [workflow]
    while pending:
        current = pending.pop()
        defs = current.get("definitions") or {}
        for sub in defs.get("subgraphs") or [] if isinstance(defs, Mapping) else []:
            if isinstance(sub, dict) and isinstance(sub.get("id"), str) and sub["id"] not in found:
                found[sub["id"]] = sub
                pending.append(sub)
    return found


def is_valid_connection(a: Any, b: Any) -> bool:
    """LiteGraph's type compatibility: '*' and '' match anything; comma lists match any member."""
    a = 0 if a in ("", "*") else a
    b = 0 if b in ("", "*") else b
    if not a or not b or a == b:
        return True
    sa, sb = str(a).lower(), str(b).lower()
    if "," not in sa and "," not in sb:
        return sa == sb
    return bool(set(sa.split(",")) & set(sb.split(",")))


class Converter:
    def __init__(
        self,
        workflow: Mapping[str, Any],
        object_info: Mapping[str, Any],
        unknown: Literal["error", "keep"] = "error",
    ) -> None:
        if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
            raise WorkflowError(
                "not a UI-format ComfyUI workflow (no 'nodes' list)",
                hint="save the workflow from ComfyUI's editor (Workflow > Save) or pass an API prompt",
            )
        self.object_info = object_info
        self.unknown = unknown
        self.defs = _subgraph_definitions(workflow)
        root = _parse_graph("", workflow, None)
        self.graphs: dict[str, Graph] = {"": root}
        used = set(root.nodes)
        raw_state = workflow.get("state")
        state: Mapping[str, Any] = raw_state if isinstance(raw_state, Mapping) else {}
        last = workflow.get("last_node_id", state.get("lastNodeId", 0))
        self.last_node_id = last if isinstance(last, int) else 0
        for sid, sub in self.defs.items():
            graph = _parse_graph(sid, sub, sub)
            self._deduplicate_ids(graph, used)
            self.graphs[sid] = graph
        self.dtos: dict[str, Dto] = {}
        self.missing: list[MissingNode] = []
        for graph in self.graphs.values():
            self._apply_primitives(graph)

    def _deduplicate_ids(self, graph: Graph, used: set[int]) -> None:
        """Renumber inner nodes whose id is taken, as the editor does when it loads subgraphs.

        Ids of the root graph and of subgraphs loaded earlier are taken; a clash gets the next
        free id after the workflow's `last_node_id` (which then grows).
        """
        remap: dict[int, int] = {}
        for nid in list(graph.nodes):
            if nid in used:
                new = self.last_node_id + 1
                while new in used:
                    new += 1
                self.last_node_id = new
                remap[nid] = new
                used.add(new)
            else:
                used.add(nid)
                self.last_node_id = max(self.last_node_id, nid)
        if not remap:
            return
        graph.nodes = {
            remap.get(nid, nid): {**node, "id": remap.get(nid, nid)} for nid, node in graph.nodes.items()
        }
        graph.links = {
            lid: Link(
                link.id,
                remap.get(link.origin_id, link.origin_id),
                link.origin_slot,
                remap.get(link.target_id, link.target_id),
                link.target_slot,
                link.type,
            )
            for lid, link in graph.links.items()
        }

    # -- flattening ---------------------------------------------------------------------------

    def flatten(self) -> None:
        self._add_graph(self.graphs[""], (), None, depth=0)

    def _add_graph(self, graph: Graph, path: tuple[str, ...], instance: Dto | None, depth: int) -> None:
        if depth > 32:
            raise WorkflowError("subgraphs are nested more than 32 levels deep (a subgraph contains itself?)")
        for nid, node in graph.nodes.items():
            exec_id = ":".join((*path, str(nid)))
            ntype = node.get("type")
            dto = Dto(exec_id, path, node, graph, instance)
            if isinstance(ntype, str) and ntype in self.defs:
                dto.inner = self.graphs[ntype]
                self.dtos[exec_id] = dto
                self._add_graph(dto.inner, (*path, str(nid)), dto, depth + 1)
            else:
                self.dtos[exec_id] = dto

    # -- primitive nodes ----------------------------------------------------------------------

    def _apply_primitives(self, graph: Graph) -> None:
        for node in graph.nodes.values():
            if node.get("type") != "PrimitiveNode":
                continue
            values = node.get("widgets_values")
            if not isinstance(values, list) or not values:
                continue
            outputs = node.get("outputs") or []
            link_ids = (outputs[0].get("links") or []) if outputs else []
            for link_id in link_ids:
                link = graph.links.get(_int(link_id))
                target = graph.nodes.get(link.target_id) if link else None
                if link is None or target is None:
                    continue
                inputs = target.get("inputs") or []
                if link.target_slot >= len(inputs):
                    continue
                widget = inputs[link.target_slot].get("widget")
                if isinstance(widget, Mapping) and widget.get("name"):
                    graph.overrides.setdefault(link.target_id, {})[widget["name"]] = values[0]

    # -- link resolution ----------------------------------------------------------------------

    def is_virtual(self, dto: Dto) -> bool:
        ntype = dto.node.get("type")
        return dto.inner is not None or ntype in VIRTUAL_TYPES

    def resolve_input(self, dto: Dto, slot: int, visited: set[str], type_: Any = None) -> Any:
        key = f"{dto.graph.key}:{dto.node.get('id')}[I]{slot}@{dto.exec_id}"
        if key in visited:
            raise WorkflowError(f"links loop back to node {dto.exec_id} (input {slot})")
        visited.add(key)
        inputs = dto.inputs
        if slot >= len(inputs):
            return None
        link_id = inputs[slot].get("link")
        if link_id is None:
            return None
        link = dto.graph.links.get(_int(link_id))
        if link is None:
            return None
        if link.origin_id == SUBGRAPH_INPUT_NODE and dto.instance is not None:
            return self._resolve_from_instance(dto, link, visited)
        origin = self.dtos.get(":".join((*dto.path, str(link.origin_id))))
        if origin is None:
            return None
        return self.resolve_output(origin, link.origin_slot, type_ or inputs[slot].get("type"), visited)

    def _resolve_from_instance(self, dto: Dto, link: Link, visited: set[str]) -> Any:
        instance = dto.instance
        assert instance is not None and instance.inner is not None
        definition = instance.inner.definition or {}
        def_inputs = definition.get("inputs") or []
        if link.origin_slot >= len(def_inputs):
            return None
        slot_name = def_inputs[link.origin_slot].get("name")
        outer_slot = self._instance_slot(instance, link.origin_slot, slot_name)
        outer_link = None
        if outer_slot is not None:
            outer_link = instance.inputs[outer_slot].get("link")
        if outer_link is None or instance.graph.links.get(_int(outer_link)) is None:
            found = self._promoted_value(instance, def_inputs[link.origin_slot])
            return ("value", found[1]) if found else None
        return self.resolve_input(instance, outer_slot, visited) if outer_slot is not None else None

    def _instance_slot(self, instance: Dto, index: int, name: Any) -> int | None:
        inputs = instance.inputs
        if index < len(inputs) and inputs[index].get("name") == name:
            return index
        for i, slot in enumerate(inputs):
            if slot.get("name") == name:
                return i
        return None

    def _promoted_widget(self, graph: Graph, def_input: Mapping[str, Any]) -> tuple[int, str] | None:
        """(inner node id, widget name) of the widget a subgraph input feeds first, if any."""
        for link_id in def_input.get("linkIds") or []:
            link = graph.links.get(_int(link_id))
            target = graph.nodes.get(link.target_id) if link else None
            if link is None or target is None:
                continue
            inputs = target.get("inputs") or []
            if link.target_slot >= len(inputs):
                continue
            widget = inputs[link.target_slot].get("widget")
            if isinstance(widget, Mapping) and widget.get("name"):
                return link.target_id, str(widget["name"])
            return None
        return None

    def _has_control(self, graph: Graph, node_id: int, widget_name: str) -> bool:
        node = graph.nodes.get(node_id) or {}
        definition = self.object_info.get(str(node.get("type")))
        if definition is None:
            return False
        for name, spec in input_specs(definition):
            if name == widget_name:
                return control_default(spec, name) is not None
        return False

    def _promoted_value(self, instance: Dto, def_input: Mapping[str, Any]) -> tuple[bool, Any] | None:
        """The value of the widget a subgraph input promotes.

        An instance saved with its own `widgets_values` (one per promoted input, in the order of
        the subgraph's inputs; older saves add one for a seed's control widget) keeps them;
        otherwise the promoted widget shows the inner widget's value.
        """
        assert instance.inner is not None
        graph = instance.inner
        saved = instance.node.get("widgets_values")
        if isinstance(saved, list) and saved:
            promoted = [
                (d, found)
                for d in (graph.definition or {}).get("inputs") or []
                if (found := self._promoted_widget(graph, d)) is not None
            ]
            # older saves also kept a slot for the control widget that follows a seed
            with_controls = len(saved) > len(promoted)
            index = 0
            for item, (inner_id, widget_name) in promoted:
                if item is def_input:
                    return (True, saved[index]) if index < len(saved) else None
                index += 1
                if with_controls and self._has_control(graph, inner_id, widget_name):
                    index += 1
        for link_id in def_input.get("linkIds") or []:
            link = graph.links.get(_int(link_id))
            target = graph.nodes.get(link.target_id) if link else None
            if link is None or target is None:
                continue
            inputs = target.get("inputs") or []
            if link.target_slot >= len(inputs):
                continue
            widget = inputs[link.target_slot].get("widget")
            if not isinstance(widget, Mapping) or not widget.get("name"):
                return None
            inner = self.dtos.get(
                ":".join((*instance.path, str(instance.node.get("id")), str(link.target_id)))
            )
            if inner is None:
                return None
            values = self.widget_values(inner)
            if widget["name"] in values:
                return True, values[widget["name"]]
            return None
        return None

    def resolve_output(self, dto: Dto, slot: int, type_: Any, visited: set[str]) -> Any:
        key = f"{dto.graph.key}:{dto.node.get('id')}[O]{slot}@{dto.exec_id}"
        if key in visited:
            raise WorkflowError(f"links loop back to node {dto.exec_id} (output {slot})")
        visited.add(key)
        if dto.mode == MODE_BYPASS:
            index = self._bypass_slot(dto, slot, type_)
            return None if index < 0 else self.resolve_input(dto, index, visited)
        if dto.inner is not None:
            return self._resolve_subgraph_output(dto, slot, type_, visited)
        if self.is_virtual(dto):
            if slot < len(dto.inputs):
                return self.resolve_input(dto, slot, visited, type_)
            if dto.node.get("type") == "GetNode":
                setter = self._setter_for(dto)
                return self.resolve_input(setter, 0, visited, type_) if setter is not None else None
            return None
        return ("link", dto.exec_id, slot)

    def _setter_for(self, getter: Dto) -> Dto | None:
        """The SetNode (KJNodes' named wire) in the same graph whose name a GetNode reads."""
        values = getter.node.get("widgets_values")
        name = values[0] if isinstance(values, list) and values else None
        for nid, node in getter.graph.nodes.items():
            sv = node.get("widgets_values")
            if node.get("type") == "SetNode" and isinstance(sv, list) and sv and sv[0] == name:
                return self.dtos.get(":".join((*getter.path, str(nid))))
        return None

    def _bypass_slot(self, dto: Dto, slot: int, type_: Any) -> int:
        inputs = dto.inputs
        if type_ in ("*", ""):
            return slot if len(inputs) > slot else 0
        outputs = dto.node.get("outputs") or []
        out_type = outputs[slot].get("type") if slot < len(outputs) else None
        if slot < len(inputs):
            own = inputs[slot].get("type")
            if is_valid_connection(own, out_type) and is_valid_connection(own, type_):
                return slot
        for i, item in enumerate(inputs):
            if item.get("type") == type_:
                return i
        for i, item in enumerate(inputs):
            if is_valid_connection(item.get("type"), out_type) and is_valid_connection(
                item.get("type"), type_
            ):
                return i
        return -1

    def _resolve_subgraph_output(self, dto: Dto, slot: int, type_: Any, visited: set[str]) -> Any:
        assert dto.inner is not None
        outputs = (dto.inner.definition or {}).get("outputs") or []
        if slot >= len(outputs):
            return None
        for link_id in outputs[slot].get("linkIds") or []:
            link = dto.inner.links.get(_int(link_id))
            if link is None:
                continue
            inner = self.dtos.get(":".join((*dto.path, str(dto.node.get("id")), str(link.origin_id))))
            if inner is None:
                return None
            return self.resolve_output(inner, link.origin_slot, type_, visited)
        return None

    # -- node serialisation -------------------------------------------------------------------

    def widget_values(self, dto: Dto) -> dict[str, Any]:
        ntype = dto.node.get("type")
        if not isinstance(ntype, str) or ntype not in self.object_info:
            return {}
        definition = self.object_info[ntype]
        values = layout_values(ntype, definition, dto.node.get("widgets_values"))
        overrides = dto.graph.overrides.get(_int(dto.node.get("id")))
        if overrides:
            for name, value in overrides.items():
                if name in values:
                    values[name] = value
        return values

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
    return Converter(workflow, object_info, unknown).convert()


def to_prompt(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """An API prompt from either format (an API prompt is returned as it is)."""
    if is_api_format(workflow):
        inner = workflow.get("prompt")
        return dict(inner) if isinstance(inner, Mapping) else dict(workflow)
    return convert(workflow, object_info)
