"""`GET /api/presets` from a prepared response: the bytes, a gzip copy and an ETag, made once.

The preset list is the page everyone opens, and building it costs the preset service a journal
lookup and a few `stat` calls per preset. So each (category, type) list is encoded once into a
`Prepared` response and kept until the install state can have changed:

* an install task changes state (a `task_state` event on the bus: `invalidate_on_events`);
* this API or the models API installs, cancels, uninstalls or deletes (they call `clear()`);
* `LIST_TTL` seconds went by (a file copied onto the volume by hand shows within two seconds).

The ETag is a hash of the bytes, so a rebuild that finds nothing new gives the same ETag: a client
that sends `If-None-Match` gets `304 Not Modified` until the list really changes. A client that
accepts gzip gets the compressed copy (`Vary: Accept-Encoding`).

`PresetListFastPath` answers a GET for a list that is prepared before the router runs (inside the
login check and the catch-all): no route matching, no dependency solving, no new objects. What it
does not answer — the first request, one after an invalidation, a query it does not read exactly as
the route would, the preset manager off or not started — goes on to the route in `presets.py`,
which validates, prepares the list and stores it here.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ...events import EventBus
from ...services import Services

PATH = "/api/presets"
LIST_TTL = 2.0
MAX_LISTS = 64  # distinct (category, type) lists kept; the oldest goes first
QUERY_LIMITS = {"category": 64, "type": 32}  # the route's Query(max_length=...)

Key = tuple[str | None, str | None]

_COMMON = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-cache"),
    (b"vary", b"accept-encoding"),
]


@dataclass(frozen=True)
class Prepared:
    """One encoded list, its gzip copy, its ETag and the response headers of each answer."""

    body: bytes
    etag: str
    gz: bytes = field(repr=False)
    plain_headers: list[tuple[bytes, bytes]] = field(repr=False)
    gzip_headers: list[tuple[bytes, bytes]] = field(repr=False)
    not_modified_headers: list[tuple[bytes, bytes]] = field(repr=False)

    @classmethod
    def of(cls, body: bytes) -> Prepared:
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        gz = gzip.compress(body, compresslevel=6, mtime=0)
        tag = (b"etag", etag.encode())
        return cls(
            body=body,
            etag=etag,
            gz=gz,
            plain_headers=[(b"content-length", str(len(body)).encode()), *_COMMON, tag],
            gzip_headers=[
                (b"content-length", str(len(gz)).encode()),
                (b"content-encoding", b"gzip"),
                *_COMMON,
                tag,
            ],
            not_modified_headers=[*_COMMON[1:], tag],
        )

    async def send(self, headers: Iterable[tuple[bytes, bytes]], send: Send) -> None:
        """Answer a request that sent `headers`: 304, the gzip copy or the plain bytes."""
        if_none_match = accept = b""
        for name, value in headers:
            if name == b"if-none-match":
                if_none_match = value
            elif name == b"accept-encoding":
                accept = value
        if if_none_match and etag_matches(if_none_match.decode("latin-1"), self.etag):
            status, out, body = 304, self.not_modified_headers, b""
        elif accept and accepts_gzip(accept.decode("latin-1")):
            status, out, body = 200, self.gzip_headers, self.gz
        else:
            status, out, body = 200, self.plain_headers, self.body
        # a copy of the header list: an outer middleware (CORS) may add to it
        await send({"type": "http.response.start", "status": status, "headers": list(out)})
        await send({"type": "http.response.body", "body": body})


def etag_matches(header: str, etag: str) -> bool:
    """`If-None-Match` (a list, `*`, weak tags compared weakly as RFC 9110 says for GET)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def list_key(query: bytes) -> Key | None:
    """The (category, type) of a query string read exactly as the route reads it; None when the
    route must decide (another parameter, a repeated one, a value over its length limit)."""
    if not query:
        return (None, None)
    found: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        limit = QUERY_LIMITS.get(name)
        if limit is None or name in found or len(value) > limit:
            return None
        found[name] = value
    return (found.get("category"), found.get("type"))


class PreparedLists:
    """The prepared lists by (category, type): fresh for `ttl` seconds or until `clear()`."""

    def __init__(self, ttl: float = LIST_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[Key, tuple[float, Prepared]] = {}

    def get(self, key: Key) -> Prepared | None:
        hit = self._items.get(key)
        if hit is not None and self._clock() - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, key: Key, body: bytes) -> Prepared:
        old = self._items.pop(key, None)
        prepared = old[1] if old is not None and old[1].body == body else Prepared.of(body)
        if len(self._items) >= MAX_LISTS:
            del self._items[next(iter(self._items))]
        self._items[key] = (self._clock(), prepared)
        return prepared

    def clear(self) -> None:
        """The install state may have changed: every list is rebuilt on its next request."""
        self._items = {key: (float("-inf"), prepared) for key, (_, prepared) in self._items.items()}


class PreparedResponse(Response):
    """What the route returns: the prepared answer for this request's headers."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.status_code = 200
        self.background = None
        self.body = prepared.body
        self.raw_headers = list(prepared.plain_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.prepared.send(scope["headers"], send)


class PresetListFastPath:
    """Pure ASGI, inside the login check: a GET of a prepared list is answered here."""

    def __init__(self, app: ASGIApp, lists: PreparedLists, services: Services) -> None:
        self.app = app
        self.lists = lists
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            key = list_key(scope["query_string"])
            svc = self.services
            if key is not None and svc.presets is not None and svc.settings.enable_preset_manager:
                prepared = self.lists.get(key)
                if prepared is not None:
                    await prepared.send(scope["headers"], send)
                    return
        await self.app(scope, receive, send)


async def invalidate_on_events(bus: EventBus, lists: PreparedLists) -> None:
    """Mark every list stale whenever an install task changes state (woken by the bus, never polling)."""
    sub = bus.subscribe(["task_state"], maxsize=16)
    try:
        while True:
            await sub.get()
            lists.clear()
    finally:
        sub.close()
