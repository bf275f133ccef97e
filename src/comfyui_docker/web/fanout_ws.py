"""`/api/comfyui/ws` over several ComfyUIs (COMFYUI_GPUS): one client socket, one per instance.

    clientId        every instance is asked with the same one (the client's, or one made here and
                    told in the first `status` frame's `sid`, as ComfyUI does), so a prompt sent
                    with it through POST /prompt reports here whichever instance runs it
    status          carries the sum of the instances' queues; `sid` is said once
    feature_flags   the client's go to every instance; the first answer comes back
    other frames    from the client: to every instance; from an instance: to the client as they
                    come (text and binary previews), one at a time
    an instance     down when the client connects, or restarting later, is joined as soon as it
                    runs again (tried every second, for as long as the client stays)

The socket closes when the client leaves; it is refused (503) when no instance can be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from starlette.websockets import WebSocket
from yarl import URL

from ..comfyui.client import ComfyUIClient
from ..comfyui.routing import Router
from .pump import until_first_done

log = logging.getLogger(__name__)
RETRY_S = 1.0


def with_client_id(query_string: str) -> tuple[str, str]:
    """(query for the instances, client id): the client's clientId, or a new one like ComfyUI's."""
    params = parse_qsl(query_string, keep_blank_values=True)
    client_id = next((v for k, v in params if k == "clientId" and v), "") or uuid.uuid4().hex
    kept = [(k, v) for k, v in params if k != "clientId"]
    return urlencode([*kept, ("clientId", client_id)]), client_id


class MergedSocket:
    def __init__(
        self, websocket: WebSocket, session: aiohttp.ClientSession, router: Router, query: str
    ) -> None:
        self.websocket = websocket
        self.session = session
        self.router = router
        self.query = query
        self.upstreams: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.remaining: dict[str, int] = {}
        self.said_sid = False
        self.said_flags = False
        self._sending = asyncio.Lock()

    async def connect(self, client: ComfyUIClient) -> aiohttp.ClientWebSocketResponse | None:
        url = URL(f"{client.base_url}/ws?{self.query}", encoded=True)
        try:
            return await self.session.ws_connect(url, autoping=True, max_msg_size=0, heartbeat=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.debug("%s: no WebSocket (%s)", client.name, exc)
            return None

    async def open(self) -> int:
        """Connect to every running instance; how many answered."""
        running = self.router.up()
        sockets = await asyncio.gather(*(self.connect(c) for c in running))
        for client, ws in zip(running, sockets, strict=True):
            if ws is not None:
                self.upstreams[client.name] = ws
        return len(self.upstreams)

    async def run(self) -> None:
        try:
            await until_first_done(self._from_client(), *(self._follow(c) for c in self.router.clients))
        finally:
            for ws in list(self.upstreams.values()):
                await ws.close()
            self.upstreams.clear()

    async def _from_client(self) -> None:
        while True:
            msg: Any = await self.websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            for ws in list(self.upstreams.values()):
                with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                    if msg.get("text") is not None:
                        await ws.send_str(msg["text"])
                    elif msg.get("bytes") is not None:
                        await ws.send_bytes(msg["bytes"])

    async def _follow(self, client: ComfyUIClient) -> None:
        """One instance's frames to the client, rejoining it whenever it runs again."""
        while True:
            ws = self.upstreams.get(client.name)
            if ws is None and (self.router.is_up is None or self.router.is_up(client.name)):
                ws = await self.connect(client)
            if ws is None:
                await asyncio.sleep(RETRY_S)
                continue
            self.upstreams[client.name] = ws
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        text = self._rewrite(client, msg.data)
                        if text is not None:
                            async with self._sending:
                                await self.websocket.send_text(text)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        async with self._sending:
                            await self.websocket.send_bytes(msg.data)
                    else:
                        break
            finally:
                self.upstreams.pop(client.name, None)
                self.remaining.pop(client.name, None)
                await ws.close()
            await asyncio.sleep(RETRY_S)  # it went away: restarting, most likely

    def _rewrite(self, client: ComfyUIClient, text: str) -> str | None:
        """A frame as the client gets it (None: not sent)."""
        head = text[:40]
        if '"status"' not in head and '"feature_flags"' not in head:
            return text
        try:
            frame = json.loads(text)
        except ValueError:
            return text
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "feature_flags":
            if self.said_flags:
                return None
            self.said_flags = True
            return text
        data = frame.get("data") if kind == "status" else None
        status = data.get("status") if isinstance(data, dict) else None
        info = status.get("exec_info") if isinstance(status, dict) else None
        if not isinstance(data, dict) or not isinstance(info, dict):
            return text
        if isinstance(info.get("queue_remaining"), int):
            self.remaining[client.name] = info["queue_remaining"]
            info["queue_remaining"] = sum(self.remaining.values())
        if "sid" in data:
            if self.said_sid:
                del data["sid"]
            self.said_sid = True
        return json.dumps(frame)
