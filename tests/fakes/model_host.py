"""A fault-injecting HTTP/1.1 file host on 127.0.0.1 (a real socket server in its own thread).

It serves byte strings by path with `Range` support and keep-alive, and, per path, a script of
faults consumed one per request:

    drop:N        send the headers and N body bytes, then cut the connection
    short:N       announce the full Content-Length, send N bytes, close cleanly
    status:CODE   answer CODE (500, 503, 404, 401...) with a small body
    429:SECS      answer 429 with Retry-After: SECS
    ignore_range  answer 200 with the whole body even when a Range was asked
    corrupt       flip bytes in the body sent
    redirect:URL  answer 302 to URL (another host, to check tokens do not follow)
    stall:SECS    send the headers, then nothing for SECS
    ok            serve normally (useful to position a later fault)

`rate` caps every connection's bytes per second (as CDNs do). `require_token` makes a path
answer 401 without `Authorization: Bearer <token>`. Every request is recorded in `requests`.
With `ssl_context` it serves https (tokens only ever travel over https).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Served:
    data: bytes
    faults: deque[str] = field(default_factory=deque)
    require_token: str | None = None
    etag: str = '"v1"'


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    range: str | None = None
    connection: int = 0


class ModelHost:
    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        rate: float | None = None,
        ranges: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.port = 0
        self.rate = rate
        self.ranges = ranges
        self.files: dict[str, Served] = {}
        self.requests: list[Seen] = []
        self.active_connections = 0
        self.max_active_connections = 0
        self.bytes_sent = 0
        self._conn_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    # ---- set-up -----------------------------------------------------------------------
    def add(self, path: str, data: bytes, *faults: str, require_token: str | None = None) -> str:
        self.files[path] = Served(data, deque(faults), require_token)
        return self.url(path)

    def fault(self, path: str, *faults: str) -> None:
        self.files[path].faults.extend(faults)

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def requests_for(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> ModelHost:
        self._thread = threading.Thread(target=self._run, name="model-host", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("model host did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> ModelHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- server -----------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(self._client, self.host, self.port, ssl=self.ssl_context)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._conn_seq += 1
            conn = self._conn_seq
            self.active_connections += 1
            self.max_active_connections = max(self.max_active_connections, self.active_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                keep = await self._handle(head, writer, conn)
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            with self._lock:
                self.active_connections -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        step = 64 * 1024
        for i in range(0, len(data), step):
            chunk = data[i : i + step]
            writer.write(chunk)
            await writer.drain()
            self.bytes_sent += len(chunk)
            if self.rate:
                await asyncio.sleep(len(chunk) / self.rate)

    @staticmethod
    def _head(status: int, reason: str, headers: dict[str, Any]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _handle(self, head: bytes, writer: asyncio.StreamWriter, conn: int) -> bool:
        text = head.decode("latin-1")
        request_line, *header_lines = text.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        path = target.split("?", 1)[0]
        seen = Seen(method, path, headers, range=headers.get("range"), connection=conn)
        self.requests.append(seen)

        def reply(status: int, reason: str, body: bytes = b"", extra: dict[str, Any] | None = None) -> bytes:
            seen.status = status
            hdrs = {"Content-Length": len(body), **(extra or {})}
            return self._head(status, reason, hdrs) + body

        served = self.files.get(path)
        if served is None:
            writer.write(reply(404, "Not Found", b"no such file"))
            await writer.drain()
            return True
        fault = served.faults.popleft() if served.faults else "ok"
        kind, _, arg = fault.partition(":")
        if kind == "status":
            code = int(arg)
            writer.write(reply(code, "Fault", f"fault {code}".encode()))
            await writer.drain()
            return True
        if kind == "429":
            writer.write(reply(429, "Too Many Requests", b"slow down", {"Retry-After": arg}))
            await writer.drain()
            return True
        if kind == "redirect":
            writer.write(reply(302, "Found", b"", {"Location": arg}))
            await writer.drain()
            return True
        token_ok = headers.get("authorization") == f"Bearer {served.require_token}"
        if served.require_token is not None and not token_ok:
            writer.write(reply(401, "Unauthorized", b"gated: accept the licence"))
            await writer.drain()
            return True

        data = served.data
        total = len(data)
        start, end = 0, total - 1
        status, reason = 200, "OK"
        rng = headers.get("range")
        extra: dict[str, Any] = {"ETag": served.etag}
        if self.ranges:
            extra["Accept-Ranges"] = "bytes"
        if rng and self.ranges and kind != "ignore_range" and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first) if first else 0
            end = min(int(last), total - 1) if last else total - 1
            if start >= total or start > end:
                writer.write(reply(416, "Range Not Satisfiable", b"", {"Content-Range": f"bytes */{total}"}))
                await writer.drain()
                return True
            status, reason = 206, "Partial Content"
            extra["Content-Range"] = f"bytes {start}-{end}/{total}"
        body = data[start : end + 1]
        seen.status = status
        writer.write(self._head(status, reason, {"Content-Length": len(body), **extra}))
        if method == "HEAD":
            await writer.drain()
            return True
        if kind == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        if kind == "drop":
            await self._send(writer, body[: int(arg)])
            await asyncio.sleep(0.05)  # let the client read what was sent, then reset
            writer.transport.abort()
            return False
        if kind == "short":
            await self._send(writer, body[: int(arg)])
            await writer.drain()
            await asyncio.sleep(0.05)
            return False
        if kind == "stall":
            await writer.drain()
            await asyncio.sleep(float(arg))
            return False
        await self._send(writer, body)
        return True
