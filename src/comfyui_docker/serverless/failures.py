"""How a failed job answers: worker-comfyui's `{"error": "<text>"}`, with `details` beside it.

The RunPod SDK turns a handler's `{"error": ...}` into a FAILED job whose `error` is that text
(`/runsync` shows only the text; RunPod's job record also keeps the rest of the output), so the
text says everything: the node by title and input, the exception, what to do.

    JobFailed          the job could not be done here: timeout, ComfyUI gone, nothing returned
    └── ComfyUIDown    ComfyUI failed to start or was stopped: this worker cannot serve jobs
                       (`refresh_worker`: RunPod replaces it)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..comfyui import ExecutionFailed, PromptRejected
from ..errors import AppError


class JobFailed(AppError):
    status = 500
    code = "job_failed"


class ComfyUIDown(JobFailed):
    status = 503
    code = "comfyui_down"


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


def missing_text(missing: Sequence[dict[str, Any]]) -> str:
    lines = []
    for m in missing:
        where = f"{m['folder']}/{m['name']}"
        source = []
        if m.get("providers"):
            source.append(f"preset {', '.join(m['providers'])}")
        if m.get("url"):
            source.append(str(m["url"]))
        lines.append(f"{where} ({'; '.join(source) or 'no known download'})")
    return (
        "The workflow needs model files that are not installed:\n"
        + _bullets(lines)
        + '\nSend "install_missing": true to download them to the volume first.'
    )


def error_text(exc: AppError) -> str:
    if isinstance(exc, PromptRejected):
        missing = exc.details.get("missing") or []
        head = "Workflow validation failed:\n" + _bullets(exc.problems)
        return f"{head}\n{missing_text(missing)}" if missing else head
    if isinstance(exc, ExecutionFailed):
        return f"Workflow execution error: {exc.message}"
    return f"{exc.message}\n  -> {exc.hint}" if exc.hint else exc.message


def error_output(exc: AppError) -> dict[str, Any]:
    """The handler's answer for a failed job."""
    out: dict[str, Any] = {"error": error_text(exc), "details": exc.to_dict()}
    if isinstance(exc, ComfyUIDown):
        out["refresh_worker"] = True
    return out
