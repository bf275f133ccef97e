"""Node types the converter knows by name: frontend-only ones, editor titles, node packs, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .graph import WorkflowError

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
