"""A UI-format workflow as the editor holds it after loading: graphs, links, flattened nodes.

The root graph and each subgraph definition (`definitions.subgraphs`, nested ones too) become a
`Graph`: nodes by id and links by id (root links are arrays `[id, from, slot, to, slot, type]`,
subgraph links are objects; both are read). As the editor does on load, inner node ids that
clash with the root's or an earlier subgraph's are renumbered after `last_node_id`, and primitive
nodes' values are noted for the widgets they feed. A `Dto` is one node at one subgraph path
(`"68:10"`), as the editor's execution DTOs are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

MODE_NEVER = 2
MODE_BYPASS = 4
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20


#: Node types the editor draws itself and never sends to ComfyUI (no class on the server).
class WorkflowError(InvalidInput):
    """The workflow cannot be converted (malformed graph, broken link, loop)."""

    code = "invalid_workflow"


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

    def link_targets(self, link_ids: Any) -> Iterator[tuple[Link, str | None]]:
        """For each link that reaches an existing input: the link and the widget that input feeds.

        Dangling links (to a missing node or slot) are skipped; the name is None when the target
        input is a plain socket rather than a widget converted to an input.
        """
        for link_id in link_ids or []:
            link = self.links.get(to_int(link_id))
            target = self.nodes.get(link.target_id) if link else None
            if link is None or target is None:
                continue
            inputs = target.get("inputs") or []
            if link.target_slot >= len(inputs):
                continue
            widget = inputs[link.target_slot].get("widget")
            yield link, (str(widget["name"]) if isinstance(widget, Mapping) and widget.get("name") else None)


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


def to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"not a node id or slot number: {value!r}") from None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _link_from(item: Any) -> Link | None:
    if isinstance(item, Mapping):
        fields = [item.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
        kind = item.get("type")
    elif isinstance(item, (list, tuple)) and len(item) >= 5:
        fields, kind = list(item[:5]), item[5] if len(item) > 5 else None
    else:
        return None
    ints = [f for f in fields if isinstance(f, int) and not isinstance(f, bool)]
    if len(ints) != 5:
        return None  # a broken link is dropped, as the editor drops it on load
    return Link(ints[0], ints[1], ints[2], ints[3], ints[4], kind)


def parse_links(raw: Any) -> dict[int, Link]:
    links: dict[int, Link] = {}
    for item in _list(raw):
        link = _link_from(item)
        if link is not None:
            links[link.id] = link
    return links


def _slot(raw: Any) -> dict[str, Any]:
    """An input/output slot with the fields the converter reads, well typed (others kept)."""
    if not isinstance(raw, Mapping):
        return {"name": "", "type": None, "link": None}
    slot = dict(raw)
    slot["name"] = raw.get("name") if isinstance(raw.get("name"), str) else ""
    link = raw.get("link")
    slot["link"] = link if isinstance(link, int) and not isinstance(link, bool) else None
    slot["links"] = [x for x in _list(raw.get("links")) if isinstance(x, int) and not isinstance(x, bool)]
    if "widget" in raw and not (
        isinstance(raw["widget"], Mapping) and isinstance(raw["widget"].get("name"), str)
    ):
        del slot["widget"]
    return slot


def clean_node(raw: Any) -> dict[str, Any]:
    """A node with well-typed fields, or WorkflowError when it cannot be read at all."""
    if not isinstance(raw, Mapping) or "id" not in raw:
        raise WorkflowError("a node has no id; the file is not a ComfyUI workflow")
    node = dict(raw)
    node["id"] = to_int(raw["id"])
    if not isinstance(raw.get("type"), str) or not raw["type"]:
        raise WorkflowError(f"node {node['id']} has no type")
    mode = raw.get("mode")
    node["mode"] = mode if isinstance(mode, int) and not isinstance(mode, bool) else 0
    node["inputs"] = [_slot(x) for x in _list(raw.get("inputs"))]
    node["outputs"] = [_slot(x) for x in _list(raw.get("outputs"))]
    values = raw.get("widgets_values")
    node["widgets_values"] = values if isinstance(values, (list, Mapping)) else None
    node["properties"] = raw.get("properties") if isinstance(raw.get("properties"), Mapping) else {}
    if "title" in raw and not isinstance(raw["title"], str):
        del node["title"]
    return node


def parse_graph(key: str, data: Mapping[str, Any], definition: dict[str, Any] | None) -> Graph:
    nodes: dict[int, dict[str, Any]] = {}
    for raw in _list(data.get("nodes")):
        node = clean_node(raw)
        nodes[node["id"]] = node
    return Graph(key, nodes, parse_links(data.get("links")), definition)


def _clean_io(raw: Any) -> list[dict[str, Any]]:
    out = []
    for item in _list(raw):
        entry = dict(item) if isinstance(item, Mapping) else {}
        entry["linkIds"] = [
            x for x in _list(entry.get("linkIds")) if isinstance(x, int) and not isinstance(x, bool)
        ]
        out.append(entry)
    return out


def subgraph_definitions(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    pending = [workflow]
    while pending:
        current = pending.pop()
        defs = current.get("definitions") or {}
        for sub in defs.get("subgraphs") or [] if isinstance(defs, Mapping) else []:
            if isinstance(sub, Mapping) and isinstance(sub.get("id"), str) and sub["id"] not in found:
                clean = {
                    **sub,
                    "inputs": _clean_io(sub.get("inputs")),
                    "outputs": _clean_io(sub.get("outputs")),
                }
                found[sub["id"]] = clean
                pending.append(clean)
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


def deduplicate_ids(graph: Graph, used: set[int], last_node_id: int) -> int:
    """Renumber inner nodes whose id is taken, as the editor does when it loads subgraphs.

    Ids of the root graph and of subgraphs loaded earlier are taken; a clash gets the next
    free id after the workflow's `last_node_id`; returns the new `last_node_id`.
    """
    remap: dict[int, int] = {}
    for nid in list(graph.nodes):
        if nid in used:
            new = last_node_id + 1
            while new in used:
                new += 1
            last_node_id = new
            remap[nid] = new
            used.add(new)
        else:
            used.add(nid)
            last_node_id = max(last_node_id, nid)
    if not remap:
        return last_node_id
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
    return last_node_id


def apply_primitives(graph: Graph) -> None:
    """Record what each primitive node copies into the widgets it feeds (`graph.overrides`)."""
    for node in graph.nodes.values():
        if node.get("type") != "PrimitiveNode":
            continue
        values = node.get("widgets_values")
        if not isinstance(values, list) or not values:
            continue
        outputs = node.get("outputs") or []
        link_ids = (outputs[0].get("links") or []) if outputs else []
        for link, name in graph.link_targets(link_ids):
            if name:
                graph.overrides.setdefault(link.target_id, {})[name] = values[0]


def load_graphs(workflow: Mapping[str, Any]) -> tuple[dict[str, Graph], dict[str, dict[str, Any]]]:
    """The root graph ("") and every subgraph definition, ids de-duplicated, primitives applied."""
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError(
            "not a UI-format ComfyUI workflow (no 'nodes' list)",
            hint="save the workflow from ComfyUI's editor (Workflow > Save) or pass an API prompt",
        )
    defs = subgraph_definitions(workflow)
    root = parse_graph("", workflow, None)
    graphs: dict[str, Graph] = {"": root}
    used = set(root.nodes)
    raw_state = workflow.get("state")
    state: Mapping[str, Any] = raw_state if isinstance(raw_state, Mapping) else {}
    last = workflow.get("last_node_id", state.get("lastNodeId", 0))
    last_node_id = last if isinstance(last, int) else 0
    for sid, sub in defs.items():
        graph = parse_graph(sid, sub, sub)
        last_node_id = deduplicate_ids(graph, used, last_node_id)
        graphs[sid] = graph
    for graph in graphs.values():
        apply_primitives(graph)
    return graphs, defs
