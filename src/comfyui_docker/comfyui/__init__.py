"""Talking to ComfyUI: a typed async client and the WebSocket relay onto the event bus."""

from .client import ComfyUIClient, ComfyUIError, PromptRejected, PromptResult
from .relay import Relay

__all__ = ["ComfyUIClient", "ComfyUIError", "PromptRejected", "PromptResult", "Relay"]
