"""ComfyUI's failures, as the runtime's errors (each a status and a message a user can act on).

    ServiceUnavailable      (errors.py) ComfyUI does not answer, or answers 503       503
    ComfyUIError            ComfyUI answered something unexpected                      502
    └── ExecutionFailed     the prompt was queued but a node raised, it was
                            interrupted, or no result came in time                     502
    PromptRejected          ComfyUI refused the graph (400 from POST /prompt):         400
                            `problems` (readable lines), `missing` (model files it
                            lacks), and its own `error` / `node_errors`, scrubbed

`scrub` is the one place that removes what ComfyUI's error bodies must not show a user:
tracebacks and exception texts carry server paths and the Python layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import AppError, InvalidInput, ServiceUnavailable
from ..model_inputs import ModelRef
from .shapes import JsonObject

#: Keys of ComfyUI's error bodies that hold server paths (tracebacks, exception texts).
HIDDEN_KEYS = frozenset({"traceback", "exception_message"})


class ComfyUIError(AppError):
    status = 502
    code = "comfyui_error"


class ExecutionFailed(ComfyUIError):
    code = "execution_failed"


class PromptRejected(InvalidInput):
    """ComfyUI refused the prompt. `details`: problems, missing, error, node_errors."""

    code = "prompt_rejected"

    def __init__(
        self,
        problems: Sequence[str],
        missing: Sequence[ModelRef],
        error: JsonObject,
        node_errors: JsonObject,
    ) -> None:
        lines = list(problems) or ["ComfyUI refused the prompt without saying why"]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        hint = (
            "install the missing model files, then queue again"
            if missing
            else "fix the inputs listed in details.problems"
        )
        super().__init__(
            f"ComfyUI rejected the prompt: {lines[0]}{more}",
            hint=hint,
            problems=lines,
            missing=[m.as_dict() for m in missing],
            error=error,
            node_errors=node_errors,
        )
        self.problems = lines
        self.missing = list(missing)
        self.error = error
        self.node_errors = node_errors


def unreachable(base_url: str, exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"ComfyUI does not answer at {base_url} ({type(exc).__name__})",
        hint="it may still be starting (its state is on the dashboard; `comfyui-docker health`)",
        state="unreachable",
    )


def scrub(value: object) -> object:
    """`value` without tracebacks and exception texts, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in HIDDEN_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def scrub_object(value: object) -> JsonObject:
    cleaned = scrub(value)
    return cleaned if isinstance(cleaned, dict) else {}
