"""Running the two directions of a WebSocket side by side until one of them ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocketDisconnect

log = logging.getLogger(__name__)


async def until_first_done(*coros: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines concurrently; when one ends, cancel the others and wait for them.

    A side that fails once the other has ended (the peer went away) is logged, not raised: the
    connection is over either way.
    """
    tasks = [asyncio.create_task(coro) for coro in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, WebSocketDisconnect):
                pass
            except Exception as exc:
                log.debug("websocket side ended with %r", exc)
