"""Talking to ComfyUI: the gateway every caller uses, and what it is built from.

gateway.py   ComfyUIGateway: submit, run, history, view, queue, interrupt, delete, events
client.py    ComfyUIClient: one ComfyUI's HTTP API and WebSocket, one set of timeouts
runner.py    PromptRun: follow one prompt over the WebSocket to its saved outputs
relay.py     Relay: a ComfyUI's WebSocket onto the event bus
explain.py   ComfyUI's errors as readable lines (by node title, class and input)
errors.py    ComfyUIError, ExecutionFailed, PromptRejected; `scrub` for error bodies
shapes.py    typed answers: Submitted, QueueSnapshot, HistoryEntry, OutputFile
"""

from .client import TIMEOUTS, ComfyUIClient, Timeouts
from .errors import ComfyUIError, ExecutionFailed, PromptRejected
from .gateway import ComfyUIGateway
from .relay import Relay
from .runner import EventSink, RunResult
from .shapes import HistoryEntry, OutputFile, Prompt, QueueItem, QueueSnapshot, Submitted

__all__ = [
    "TIMEOUTS",
    "ComfyUIClient",
    "ComfyUIError",
    "ComfyUIGateway",
    "EventSink",
    "ExecutionFailed",
    "HistoryEntry",
    "OutputFile",
    "Prompt",
    "PromptRejected",
    "QueueItem",
    "QueueSnapshot",
    "Relay",
    "RunResult",
    "Submitted",
    "Timeouts",
]
