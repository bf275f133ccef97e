"""The shapes of ComfyUI's answers that the runtime reads (COMFYUI.md §2), as typed values.

    Prompt          an API-format graph: node id -> {"class_type", "inputs", "_meta"?}
    Submitted       POST /prompt accepted it: prompt id, queue number, the WebSocket id it reports to
    QueueItem       one entry of GET /queue (running or pending)
    QueueSnapshot   GET /queue: running and pending entries
    OutputFile      a file a node wrote, as /history and `executed` frames name it (for /view)
    HistoryEntry    GET /history/{id}: outputs, status, and the terminal message once finished

Parsing never trusts ComfyUI's JSON: anything of the wrong shape is skipped, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

#: An API-format graph. Node inputs hold any JSON value, or a link `[node id, output index]`.
Prompt = dict[str, Any]
#: A JSON object from ComfyUI that is passed on as it is (node_errors, frame data).
JsonObject = dict[str, Any]

TERMINAL = ("execution_success", "execution_error", "execution_interrupted")


def as_object(value: object) -> JsonObject:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Submitted:
    prompt_id: str
    number: int
    client_id: str
    node_errors: JsonObject

    def to_dict(self) -> JsonObject:
        return {
            "prompt_id": self.prompt_id,
            "number": self.number,
            "client_id": self.client_id,
            "node_errors": self.node_errors,
        }


@dataclass(frozen=True)
class QueueItem:
    number: int
    prompt_id: str
    nodes: int | None
    client_id: str | None
    create_time: int | None

    @classmethod
    def parse(cls, item: object) -> QueueItem | None:
        """`[number, prompt_id, graph, extra_data, outputs_to_execute]` (None when malformed)."""
        if not isinstance(item, list) or len(item) < 2:
            return None
        extra = as_object(item[3]) if len(item) > 3 else {}
        graph = item[2] if len(item) > 2 else None
        number = item[0] if isinstance(item[0], int) else 0
        created = extra.get("create_time")
        return cls(
            number=number,
            prompt_id=str(item[1]),
            nodes=len(graph) if isinstance(graph, dict) else None,
            client_id=str(extra["client_id"]) if extra.get("client_id") is not None else None,
            create_time=created if isinstance(created, int) else None,
        )

    def to_dict(self) -> JsonObject:
        return {
            "number": self.number,
            "prompt_id": self.prompt_id,
            "nodes": self.nodes,
            "client_id": self.client_id,
            "create_time": self.create_time,
        }


@dataclass(frozen=True)
class QueueSnapshot:
    running: tuple[QueueItem, ...] = ()
    pending: tuple[QueueItem, ...] = ()

    @classmethod
    def parse(cls, data: object) -> QueueSnapshot:
        body = as_object(data)
        return cls(_items(body.get("queue_running")), _items(body.get("queue_pending")))

    def merged(self, other: QueueSnapshot) -> QueueSnapshot:
        """Two instances' queues as one (pending in queue-number order)."""
        pending = sorted((*self.pending, *other.pending), key=lambda i: i.number)
        return QueueSnapshot((*self.running, *other.running), tuple(pending))

    def holds(self, prompt_id: str) -> bool:
        return any(i.prompt_id == prompt_id for i in (*self.running, *self.pending))

    def to_dict(self) -> JsonObject:
        return {
            "running": [i.to_dict() for i in self.running],
            "pending": [i.to_dict() for i in self.pending],
        }


def _items(raw: object) -> tuple[QueueItem, ...]:
    parsed = (QueueItem.parse(item) for item in raw) if isinstance(raw, list) else ()
    return tuple(item for item in parsed if item is not None)


@dataclass(frozen=True)
class OutputFile:
    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def parse(cls, item: object) -> OutputFile | None:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            return None
        return cls(item["filename"], str(item.get("subfolder") or ""), str(item.get("type") or "output"))

    def params(self) -> dict[str, str]:
        """The query of `/view` for this file."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}

    def relative_path(self) -> PurePosixPath | None:
        """`subfolder/filename` when it stays inside a folder (None for `..`, absolute or empty)."""
        parts = [p for p in PurePosixPath(self.subfolder or ".").parts if p not in ("", ".")]
        name = PurePosixPath(self.filename).name
        if not name or name in (".", "..") or any(p == ".." or p.startswith("/") for p in parts):
            return None
        return PurePosixPath(*parts, name)


def output_files(outputs: Mapping[str, object]) -> Iterator[OutputFile]:
    """Every file named in a prompt's outputs (images, videos, audio, ...), in node order."""
    for node_output in outputs.values():
        for items in as_object(node_output).values():
            for item in items if isinstance(items, list) else ():
                found = OutputFile.parse(item)
                if found is not None:
                    yield found


@dataclass(frozen=True)
class HistoryEntry:
    outputs: JsonObject
    status_str: str | None
    completed: bool | None
    messages: tuple[tuple[str, JsonObject], ...]

    @classmethod
    def parse(cls, data: object) -> HistoryEntry:
        body = as_object(data)
        status = as_object(body.get("status"))
        messages = tuple(
            (str(m[0]), as_object(m[1]))
            for m in status.get("messages") or ()
            if isinstance(m, list) and len(m) == 2
        )
        completed = status.get("completed")
        status_str = status.get("status_str")
        return cls(
            outputs=as_object(body.get("outputs")),
            status_str=status_str if isinstance(status_str, str) else None,
            completed=completed if isinstance(completed, bool) else None,
            messages=messages,
        )

    @property
    def finished(self) -> bool:
        return self.completed is not None

    def terminal(self) -> tuple[str, JsonObject]:
        """The terminal message (`execution_success` / `_error` / `_interrupted`) and its data."""
        for kind, data in reversed(self.messages):
            if kind in TERMINAL:
                return kind, data
        return ("execution_success" if self.status_str == "success" else "execution_error"), {}

    def files(self) -> list[OutputFile]:
        return list(output_files(self.outputs))
