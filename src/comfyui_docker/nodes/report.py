"""What `nodes list`, `nodes check` and the Nodes page show: each node of the image and of the
volume with its commit, its import state from the last ComfyUI start (imports.py) and, for the
volume's, the state of its packages in the layer and what is missing (reqcheck.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AppError
from . import imports, reqcheck
from .inventory import NodeInfo
from .layer import Layer

if TYPE_CHECKING:
    from .service import NodeService


async def status(service: NodeService) -> dict[str, Any]:
    """Everything the Nodes page and `nodes list` show."""
    report = imports.last_start(service.workspace.logs / "comfyui.log")
    layer: Layer | None = None
    problem = ""
    try:
        layer = Layer(service.workspace.python, await service.image_env())
    except AppError as exc:
        problem = str(exc)
    records = layer.read_state() if layer is not None else {}
    fingerprint = layer.image.fingerprint if layer is not None else ""
    sources = service.sources.read()

    def describe(node: NodeInfo) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": node.name,
            "where": node.where,
            "path": str(node.path),
            "commit": node.commit(),
            "requirements": node.requirements is not None,
            "install_script": node.install_script is not None,
        }
        found = report.lookup(node.path)
        if found is not None:
            item["import"] = {"state": "ok" if found.ok else "failed", "error": found.error}
        else:
            item["import"] = {"state": "not_loaded" if report.found else "unknown", "error": ""}
        if node.where == "volume":
            rec = records.get(node.name)
            current = node.requirements_hash(fingerprint) if layer is not None else ""
            if rec is None or rec.hash != current:
                item["packages"] = {"state": "unchecked", "error": ""}
            else:
                item["packages"] = {"state": "ok" if rec.ok else "failed", "error": rec.error}
            item["source"] = sources.get(node.name)
        return item

    return {
        "image": [describe(n) for n in service.image_nodes()],
        "volume": [describe(n) for n in service.volume_nodes()],
        "layer": None
        if layer is None
        else {
            "key": layer.key,
            "path": str(layer.root),
            "site": str(layer.site),
            "hook_problem": service.hook_problem,
        },
        "problem": problem,
        "imports_seen": report.found,
        "folders": {
            "volume": str(service.volume_dir),
            "image": str(service.image_dir) if service.image_dir else None,
        },
    }


async def check(service: NodeService) -> list[dict[str, Any]]:
    """Each node's import state (last ComfyUI start) and, for volume nodes, missing requirements."""
    seen = await status(service)
    layer = await service.layer() if seen["layer"] is not None else None
    volume = {n.name: n for n in service.volume_nodes()}
    files = [n.requirements for n in volume.values() if n.requirements is not None]
    states = await reqcheck.check(layer, files, base_env=service.env) if layer is not None else {}
    out = []
    for item in [*seen["image"], *seen["volume"]]:
        node = volume.get(item["name"]) if item["where"] == "volume" else None
        req = node.requirements if node is not None else None
        state = states.get(req) if req is not None else None
        item["missing"] = state.missing if state is not None else []
        item["unchecked"] = state.unchecked if state is not None else []
        out.append(item)
    return out
