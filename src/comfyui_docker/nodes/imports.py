"""Which custom nodes the last ComfyUI start imported, read from its log (`logs/comfyui.log`).

ComfyUI 0.33 (nodes.py) logs, for a node that fails to import, the traceback and then

    [WARNING] Cannot import /workspace/custom_nodes/bad module for custom nodes: No module named 'x'

and after every node was tried, one block:

    Import times for custom nodes:
       0.0 seconds: /app/comfyui/ComfyUI/custom_nodes/websocket_image_save.py
       0.1 seconds (IMPORT FAILED): /workspace/custom_nodes/bad

Our log file has a time stamp before each line (supervisor/logcapture.py); ANSI colours are
already gone. The last block wins; its error messages are looked up between the block before it
and this one. Only the file's last 4 MiB are read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

TAIL_BYTES = 4 * 1024 * 1024
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ")
_LEVEL = re.compile(r"^\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ?")
_TIME_LINE = re.compile(r"^\s*(?P<secs>\d+(?:\.\d+)?) seconds(?P<failed> \(IMPORT FAILED\))?: (?P<path>.+)$")
_CANNOT = re.compile(r"^Cannot import (?P<path>.+) module for custom nodes: (?P<error>.*)$")
_BLOCK = "Import times for custom nodes:"


@dataclass(frozen=True)
class ImportResult:
    path: str
    ok: bool
    seconds: float
    error: str = ""  # the exception's message (its last line)
    traceback: tuple[str, ...] = ()


@dataclass
class ImportReport:
    found: bool = False  # the log has an import block at all
    results: dict[str, ImportResult] = field(default_factory=dict)

    def lookup(self, path: Path) -> ImportResult | None:
        key = str(path)
        if key in self.results:
            return self.results[key]
        real = os.path.realpath(path)
        for result in self.results.values():
            if os.path.realpath(result.path) == real:
                return result
        return None


def message(raw: str) -> str:
    """One log line without our time stamp and ComfyUI's level tag."""
    return _LEVEL.sub("", _STAMP.sub("", raw.rstrip("\n")), count=1)


def read_tail(path: Path, limit: int = TAIL_BYTES) -> list[str]:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def parse(lines: list[str]) -> ImportReport:
    texts = [message(line) for line in lines]
    blocks = [i for i, text in enumerate(texts) if text.strip() == _BLOCK]
    if not blocks:
        return ImportReport()
    last = blocks[-1]
    previous = blocks[-2] if len(blocks) > 1 else -1
    errors: dict[str, tuple[str, tuple[str, ...]]] = {}
    trace: list[str] = []
    for text in texts[previous + 1 : last]:
        if text.startswith("Traceback (most recent call last):"):
            trace = [text]
            continue
        cannot = _CANNOT.match(text)
        if cannot:
            err = cannot["error"].strip().splitlines()[-1:] or [""]
            errors[cannot["path"]] = (err[0], tuple(trace))
            trace = []
        elif trace:
            trace.append(text)
    report = ImportReport(found=True)
    for text in texts[last + 1 :]:
        match = _TIME_LINE.match(text)
        if match is None:
            if text.strip():
                break  # the block ended
            continue
        path = match["path"].strip()
        failed = bool(match["failed"])
        error, tb = errors.get(path, ("", ()))
        report.results[path] = ImportResult(
            path=path,
            ok=not failed,
            seconds=float(match["secs"]),
            error=_last_line(error, tb) if failed else "",
            traceback=tb if failed else (),
        )
    return report


def _last_line(error: str, tb: tuple[str, ...]) -> str:
    if error:
        return error
    rest = [t for t in tb if t.strip()]
    return rest[-1].strip() if rest else "import failed (see logs/comfyui.log)"


def last_start(log_file: Path) -> ImportReport:
    """The import results of the last ComfyUI start that got as far as importing nodes."""
    return parse(read_tail(log_file))
