"""BodyTap: a response body read straight off the socket, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from comfyui_docker.downloads.bodytap import ALIGN, END, BlockPool, BodyTap
from fakes.model_host import ModelHost

KIB = 1024
MIB = 1024 * KIB
DATA = os.urandom(3 * MIB + 12345)


async def _drain(tap: BodyTap, pool: BlockPool, timeout: float | None = 5) -> bytes:
    out = bytearray()
    while True:
        chunk = await tap.read(timeout)
        if not chunk.view:
            return bytes(out)
        out += chunk.view
        pool.put(chunk.block)


@pytest.fixture
def host() -> Iterator[ModelHost]:
    with ModelHost() as h:
        yield h


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_reads_the_whole_body_in_reused_blocks(host: ModelHost, session: aiohttp.ClientSession) -> None:
    url = host.add("/f", DATA)
    pool = BlockPool(size=256 * KIB)
    for _ in range(3):  # three bodies: the blocks of the first are reused by the others
        resp = await session.get(url)
        tap = BodyTap.take(resp, pool, minimum=64 * KIB, high_water=512 * KIB)
        assert tap is not None
        try:
            assert await _drain(tap, pool) == DATA
        finally:
            tap.close()
    # 3 x 3 MiB went through, but only the blocks in flight at once were ever allocated
    assert pool.created <= 8


async def test_the_connection_is_closed_after_the_tap_not_reused(
    host: ModelHost, session: aiohttp.ClientSession
) -> None:
    url = host.add("/f", DATA)
    pool = BlockPool(size=256 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, minimum=64 * KIB)
    assert tap is not None
    await _drain(tap, pool)
    tap.close()
    async with session.get(url) as again:  # aiohttp opens a new connection; no stale state
        assert await again.read() == DATA
    conns = [r.connection for r in host.requests_for("/f")]
    assert len(set(conns)) == 2


async def test_a_dropped_connection_gives_what_arrived_then_an_error(
    host: ModelHost, session: aiohttp.ClientSession
) -> None:
    url = host.add("/f", DATA, f"drop:{MIB + 100}")
    pool = BlockPool(size=256 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, minimum=64 * KIB)
    assert tap is not None
    got = bytearray()
    with pytest.raises(ConnectionResetError):
        while (chunk := await tap.read(5)).view:
            got += chunk.view
    tap.close()
    assert bytes(got) == DATA[: MIB + 100]  # every byte that arrived, and only those


async def test_a_short_body_is_an_error_not_an_end(host: ModelHost, session: aiohttp.ClientSession) -> None:
    url = host.add("/f", DATA, "short:200000")
    pool = BlockPool(size=256 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, minimum=64 * KIB)
    assert tap is not None
    with pytest.raises(ConnectionResetError):
        await _drain(tap, pool)
    tap.close()


async def test_a_stalled_server_times_out(host: ModelHost, session: aiohttp.ClientSession) -> None:
    url = host.add("/f", DATA, "stall:3")
    pool = BlockPool(size=256 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, minimum=64 * KIB)
    assert tap is not None
    with pytest.raises(TimeoutError):
        await tap.read(0.2)
    tap.close()


async def test_a_slow_reader_pauses_the_socket(host: ModelHost, session: aiohttp.ClientSession) -> None:
    url = host.add("/f", DATA)
    pool = BlockPool(size=128 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, minimum=64 * KIB, high_water=256 * KIB)
    assert tap is not None
    try:
        await asyncio.sleep(0.3)  # nobody reads: the tap stops at its high-water mark
        assert tap.paused
        assert tap.queued <= 256 * KIB + 128 * KIB
        assert await _drain(tap, pool) == DATA  # and resumes as it is read
    finally:
        tap.close()


async def test_a_slow_connection_still_hands_over_partial_blocks(session: aiohttp.ClientSession) -> None:
    with ModelHost(rate=1 * MIB) as host:
        url = host.add("/f", DATA[: 2 * MIB])
        pool = BlockPool(size=4 * MIB)  # the whole body fits one block
        resp = await session.get(url)
        tap = BodyTap.take(resp, pool, minimum=64 * KIB)
        assert tap is not None
        got, from_blocks = bytearray(), 0
        try:
            while (chunk := await tap.read(5)).view:
                got += chunk.view
                from_blocks += chunk.block is not None
        finally:
            tap.close()
    assert bytes(got) == DATA[: 2 * MIB]
    # at 1 MiB/s the block would fill only at the end (2 s); it is handed over as it goes
    assert from_blocks >= 3


async def test_small_bodies_stay_with_aiohttp(host: ModelHost, session: aiohttp.ClientSession) -> None:
    url = host.add("/small", DATA[:1000])
    async with session.get(url) as resp:
        assert BodyTap.take(resp, BlockPool(), minimum=64 * KIB) is None
        assert await resp.read() == DATA[:1000]


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Bodies the tap must leave alone: chunked, gzip-encoded."""

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(DATA), 256 * KIB):
            await resp.write(DATA[i : i + 256 * KIB])
        await resp.write_eof()
        return resp

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(DATA), headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/gzip", gzipped)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("path", ["/chunked", "/gzip"])
async def test_chunked_and_encoded_bodies_stay_with_aiohttp(
    odd_server: str, session: aiohttp.ClientSession, path: str
) -> None:
    async with session.get(odd_server + path) as resp:
        assert BodyTap.take(resp, BlockPool(), minimum=1) is None
        body = await resp.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(DATA).digest()


async def test_end_is_empty() -> None:
    assert not END.view and END.block is None


async def _block_ends(tap: BodyTap, offset: int) -> tuple[bytes, list[int]]:
    """Read `tap` to the end (then close it): the body, and where in the file (the body starting
    at `offset`) each pool block ended."""
    pos, ends, got = offset, [], bytearray()
    try:
        while (chunk := await tap.read(5)).view:
            pos += len(chunk.view)
            got += chunk.view
            if chunk.block is not None:
                ends.append(pos)
    finally:
        tap.close()
    return bytes(got), ends


@pytest.mark.parametrize("offset", [0, 1000, 4096 * 3 + 7])
async def test_blocks_end_on_4k_boundaries_of_the_file(
    host: ModelHost, session: aiohttp.ClientSession, offset: int
) -> None:
    url = host.add("/f", DATA)
    pool = BlockPool(size=256 * KIB)
    resp = await session.get(url)
    tap = BodyTap.take(resp, pool, offset=offset, minimum=64 * KIB)
    assert tap is not None
    got, ends = await _block_ends(tap, offset)
    assert got == DATA
    # every pool block but the last ends on a 4 KiB boundary of the file: O_DIRECT can take it
    assert ends and all(end % ALIGN == 0 for end in ends[:-1])
    assert ends[-1] == offset + len(DATA)


async def test_partial_blocks_keep_the_alignment(session: aiohttp.ClientSession) -> None:
    with ModelHost(rate=2 * MIB) as host:
        url = host.add("/f", DATA[:MIB])
        pool = BlockPool(size=4 * MIB)
        resp = await session.get(url)
        tap = BodyTap.take(resp, pool, offset=123, minimum=64 * KIB)
        assert tap is not None
        got, ends = await _block_ends(tap, 123)
    assert got == DATA[:MIB]
    assert len(ends) >= 2  # handed over early (slow connection), never across a boundary
    assert all(end % ALIGN == 0 for end in ends[:-1])


async def test_over_tls_the_tap_reads_decrypted_blocks(
    https_host: tuple[str, Path], tls_session: aiohttp.ClientSession
) -> None:
    base, folder = https_host
    (folder / "f.bin").write_bytes(DATA)
    pool = BlockPool(size=256 * KIB)
    resp = await tls_session.get(base + "/f.bin")
    tap = BodyTap.take(resp, pool, minimum=64 * KIB)
    assert tap is not None  # the SSL transport takes a BufferedProtocol too
    try:
        assert await _drain(tap, pool) == DATA
    finally:
        tap.close()
