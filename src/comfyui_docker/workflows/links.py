"""Following a UI-format workflow's links, as ComfyUI's editor does before it queues a prompt.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .graph import (
    MODE_BYPASS,
    SUBGRAPH_INPUT_NODE,
    Dto,
    Graph,
    Link,
    WorkflowError,
    is_valid_connection,
    load_graphs,
    to_int,
)
from .nodetypes import VIRTUAL_TYPES
from .widgets import control_default, input_specs, layout_values


class LinkResolver:
    """A UI-format workflow flattened into its executable nodes (`dtos`, by execution id), and
    every input followed to the node output (or widget value) it really comes from."""

    def __init__(self, workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> None:
        self.object_info = object_info
        self.graphs, self.defs = load_graphs(workflow)
        self.dtos: dict[str, Dto] = {}

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
        link = dto.graph.links.get(to_int(link_id))
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
        if outer_link is None or instance.graph.links.get(to_int(outer_link)) is None:
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
        for link, name in graph.link_targets(def_input.get("linkIds")):
            return (link.target_id, name) if name else None
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
        for link, name in graph.link_targets(def_input.get("linkIds")):
            if name is None:
                return None
            inner = self.dtos.get(
                ":".join((*instance.path, str(instance.node.get("id")), str(link.target_id)))
            )
            if inner is None:
                return None
            values = self.widget_values(inner)
            if name in values:
                return True, values[name]
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
            link = dto.inner.links.get(to_int(link_id))
            if link is None:
                continue
            inner = self.dtos.get(":".join((*dto.path, str(dto.node.get("id")), str(link.origin_id))))
            if inner is None:
                return None
            return self.resolve_output(inner, link.origin_slot, type_, visited)
        return None

    def widget_values(self, dto: Dto) -> dict[str, Any]:
        ntype = dto.node.get("type")
        if not isinstance(ntype, str) or ntype not in self.object_info:
            return {}
        definition = self.object_info[ntype]
        values = layout_values(ntype, definition, dto.node.get("widgets_values"))
        overrides = dto.graph.overrides.get(to_int(dto.node.get("id")))
        if overrides:
            for name, value in overrides.items():
                if name in values:
                    values[name] = value
        return values
