"""`/api/comfyui/*` over several ComfyUIs (one per GPU, COMFYUI_GPUS): which instance answers.

The gateway's router (comfyui/routing.py) decides; this carries ComfyUI's HTTP API to it:

    POST /prompt             the running instance with the shortest queue; the prompt id of its
                             answer is remembered with that instance
    GET  /history/{id}       the instance that holds the id (unknown: each is asked, the first
    GET  /jobs/{id}...       that knows it answers, and is remembered)
    GET  /history, /jobs     every instance's, merged (newest kept under max_items / limit)
    GET  /queue, /prompt     every instance's queue, merged; queue_remaining summed
    POST /interrupt          the instance running `prompt_id`; without one, every instance
    POST /queue, /history,   every instance (delete and clear name ids that only one holds;
         /free, /jobs/...    ComfyUI ignores ids it does not know)
    GET  /view               output and input files: any running instance (the volume is
                             shared); temp files: each in turn until one has it
    anything else            any running instance (node definitions, models, user data and
                             uploads are the same for all: one volume, one set of nodes)

Every path also answers under `/api/...`, as ComfyUI's do. Bodies stream through where one
instance answers; what is merged or sent to several is read whole (JSON of a few KB; a request
body sent to several is refused above 1 MiB). The WebSocket is fanout_ws.py's.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
from fastapi import Request
from starlette.responses import JSONResponse, Response
from yarl import URL

from ..comfyui.client import ComfyUIClient
from ..comfyui.routing import Router
from ..errors import InvalidInput, PayloadTooLarge, ServiceUnavailable

BROADCAST_LIMIT = 1024 * 1024
_ID = r"(?P<id>[^/]+)"
BY_ID = (re.compile(rf"^history/{_ID}$"), re.compile(rf"^jobs/{_ID}(?:/assets)?$"))
SENT_TO_ALL = frozenset({"queue", "history", "free", "jobs/cancel"})
_CANCEL = re.compile(rf"^jobs/{_ID}/cancel$")


def route_of(tail: str) -> str:
    """The route of `tail` (what follows /api/comfyui/) without its query and `/api` alias."""
    path = tail.split("?", 1)[0].strip("/")
    return path[4:] if path.startswith("api/") else path


#: An open upstream answer -> the response streamed back (proxy.py's passthrough).
Passthrough = Callable[[aiohttp.ClientResponse], Response]


class Fanout:
    """One request of the proxy, carried to the instance(s) the route says. `tail` is the path and
    query exactly as the client encoded them; `headers` those to forward (proxy.py's)."""

    def __init__(
        self,
        request: Request,
        session: aiohttp.ClientSession,
        router: Router,
        tail: str,
        headers: list[tuple[str, str]],
        passthrough: Passthrough,
    ) -> None:
        self.request = request
        self.session = session
        self.router = router
        self.tail = tail
        self.route = route_of(tail)
        self.headers = headers
        self.passthrough = passthrough

    def url(self, client: ComfyUIClient, tail: str | None = None) -> URL:
        return URL(f"{client.base_url}/{self.tail if tail is None else tail}", encoded=True)

    def running(self) -> list[ComfyUIClient]:
        running = self.router.up()
        if not running:
            raise ServiceUnavailable(
                "no ComfyUI instance is running",
                hint="they may be starting or restarting; the dashboard's Home shows each one's state",
                state="unavailable",
            )
        return running

    # ---- what goes where ---------------------------------------------------------------------
    async def answer(self) -> Response:
        method, route = self.request.method, self.route
        if method == "POST" and route == "prompt":
            return await self.place()
        if method == "GET":
            for pattern in BY_ID:
                found = pattern.match(route)
                if found:
                    return await self.by_id(found["id"])
            if route in ("history", "queue", "prompt", "jobs"):
                return await self.merged(route)
            if route == "view" and self.request.query_params.get("type") == "temp":
                return await self.stream(*self.running())
        if method == "POST":
            cancel = _CANCEL.match(route)
            if route == "interrupt" or cancel:
                body = await self.read_body()
                holder = self.router.holder(cancel["id"] if cancel else _prompt_id(body))
                return await self.to_all(body, only=[holder] if holder is not None else None)
            if route in SENT_TO_ALL:
                return await self.to_all(await self.read_body())
        return await self.stream(self.running()[0])

    async def stream(self, *tries: ComfyUIClient) -> Response:
        """The request streamed to the first of `tries` that does not answer 404 (the last one's
        answer, whatever it is), and its answer streamed back."""
        has_body = "content-length" in self.request.headers or "transfer-encoding" in self.request.headers
        data = (
            _chunks(self.request.stream())
            if has_body and self.request.method not in ("GET", "HEAD")
            else None
        )
        for n, client in enumerate(tries):
            try:
                resp = await self.session.request(
                    self.request.method,
                    self.url(client),
                    headers=self.headers,
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,
                )
            except (TimeoutError, aiohttp.ClientError):
                if n < len(tries) - 1:
                    continue
                raise _unreachable(client) from None
            if resp.status == 404 and n < len(tries) - 1:
                resp.release()
                continue
            return self.passthrough(resp)
        raise _unreachable(tries[-1])  # pragma: no cover - the loop returns or raises

    async def place(self) -> Response:
        """POST /prompt on the shortest queue; its prompt id is remembered with the instance."""
        body = self.request.stream()
        async with self.router.placing() as client:
            status, headers, raw = await self.send(client, data=_chunks(body))
            if status == 200:
                try:
                    pid = json.loads(raw).get("prompt_id")
                except (ValueError, AttributeError):
                    pid = None
                if isinstance(pid, str) and pid:
                    self.router.remember(pid, client)
        return Response(raw, status, headers=headers)

    async def by_id(self, prompt_id: str) -> Response:
        holder = self.router.holder(prompt_id)
        if holder is not None:
            return await self.stream(holder)
        running = self.running()
        answers = await asyncio.gather(*(self.send(c, quiet=True) for c in running))
        for client, (status, headers, raw) in zip(running, answers, strict=True):
            if status == 200 and raw.strip() not in (b"{}", b""):
                self.router.remember(prompt_id, client)
                return Response(raw, status, headers=headers)
        found = [a for a in answers if a[0] != 502] or answers
        status, headers, raw = found[0]
        return Response(raw, status, headers=headers)

    async def to_all(self, body: bytes | None, *, only: Sequence[ComfyUIClient] | None = None) -> Response:
        targets = list(only) if only else self.running()
        answers = await asyncio.gather(*(self.send(c, data=body, quiet=True) for c in targets))
        good = [a for a in answers if a[0] == 200]
        status, headers, raw = (good or answers)[0]
        return Response(raw, status, headers=headers)

    async def merged(self, route: str) -> Response:
        running = self.running()
        query = dict(self.request.query_params)
        tail = self.tail
        offset, limit = _whole(query.get("offset"), 0), _whole(query.get("limit"), None)
        if route == "jobs":  # each instance's first offset+limit, merged, then the page cut
            mine = {**query, "offset": "0", **({"limit": str(offset + limit)} if limit is not None else {})}
            tail = self.tail.split("?", 1)[0] + "?" + urlencode(mine)
        answers = await asyncio.gather(*(self.send(c, tail=tail, quiet=True) for c in running))
        bodies = []
        for status, _headers, raw in answers:
            try:
                body = json.loads(raw) if status == 200 else None
            except ValueError:
                body = None
            if isinstance(body, dict):
                bodies.append(body)
        if not bodies:
            status, headers, raw = answers[0]
            return Response(raw, status, headers=headers)
        if route == "queue":
            return JSONResponse(_queue(bodies))
        if route == "prompt":
            total = sum(_remaining(b) for b in bodies)
            return JSONResponse({"exec_info": {"queue_remaining": total}})
        if route == "history":
            return JSONResponse(_history(bodies, _whole(query.get("max_items"), None)))
        return JSONResponse(_jobs(bodies, offset, limit))

    # ---- one request to one instance ---------------------------------------------------------
    async def send(
        self,
        client: ComfyUIClient,
        *,
        data: bytes | AsyncIterator[bytes] | None = None,
        tail: str | None = None,
        quiet: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body), read whole. `quiet`: no answer is a 502 instead of an error."""
        # its answer is read here (and maybe merged): not compressed; a body read whole gets its
        # own length from aiohttp
        drop = (
            {"accept-encoding"}
            if data is not None and not isinstance(data, bytes)
            else {
                "accept-encoding",
                "content-length",
            }
        )
        try:
            async with self.session.request(
                self.request.method,
                self.url(client, tail),
                headers=[(k, v) for k, v in self.headers if k not in drop],
                data=data,
                allow_redirects=False,
                auto_decompress=False,
            ) as resp:
                raw = await resp.read()
                keep = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() in ("content-type", "content-encoding", "cache-control")
                }
                return resp.status, keep, raw
        except (TimeoutError, aiohttp.ClientError) as exc:
            if quiet:
                return 502, {"content-type": "text/plain"}, f"{client.name}: {type(exc).__name__}".encode()
            raise _unreachable(client) from None

    async def read_body(self) -> bytes:
        """A request body that goes to several instances: read whole, at most 1 MiB."""
        chunks, size = [], 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > BROADCAST_LIMIT:
                raise PayloadTooLarge(
                    f"{self.route} bodies are at most 1 MiB here",
                    hint="it goes to every ComfyUI instance; send ids, not data",
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _unreachable(client: ComfyUIClient) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"{client.name} is not answering",
        hint="it may be starting or restarting; try again in a few seconds",
        state="unreachable",
    )


async def _chunks(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        if chunk:
            yield chunk


def _prompt_id(body: bytes) -> str | None:
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        raise InvalidInput("the body is not JSON", hint='send {"prompt_id": "..."} or {}') from None
    pid = data.get("prompt_id") if isinstance(data, dict) else None
    return pid if isinstance(pid, str) and pid else None


def _whole(raw: str | None, default: int | None) -> Any:
    return int(raw) if raw is not None and raw.isdigit() else default


def _remaining(body: dict[str, Any]) -> int:
    info = body.get("exec_info")
    value = info.get("queue_remaining") if isinstance(info, dict) else None
    return value if isinstance(value, int) else 0


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def _queue(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    running = [item for b in bodies for item in _list(b, "queue_running")]
    pending = [item for b in bodies for item in _list(b, "queue_pending")]
    pending.sort(key=lambda item: _created(item[3] if isinstance(item, list) and len(item) > 3 else None))
    return {"queue_running": running, "queue_pending": pending}


def _created(extra: object) -> float:
    value = extra.get("create_time") if isinstance(extra, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0


def _history(bodies: list[dict[str, Any]], max_items: int | None) -> dict[str, Any]:
    entries = [(pid, entry) for b in bodies for pid, entry in b.items()]

    def created(item: tuple[str, Any]) -> float:
        prompt = item[1].get("prompt") if isinstance(item[1], dict) else None
        return _created(prompt[3] if isinstance(prompt, list) and len(prompt) > 3 else None)

    entries.sort(key=created)  # oldest first, as ComfyUI lists them
    if max_items is not None:
        entries = entries[-max_items:] if max_items else []
    return dict(entries)


def _jobs(bodies: list[dict[str, Any]], offset: int, limit: int | None) -> dict[str, Any]:
    jobs = [job for b in bodies for job in _list(b, "jobs") if isinstance(job, dict)]
    jobs.sort(key=lambda j: (_created(j), j.get("priority") or 0), reverse=True)  # newest first
    total = 0
    for body in bodies:
        page = body.get("pagination")
        count = page.get("total") if isinstance(page, dict) else None
        total += count if isinstance(count, int) else len(_list(body, "jobs"))
    shown = jobs[offset : offset + limit] if limit is not None else jobs[offset:]
    return {
        "jobs": shown,
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(shown) < total,
        },
    }
