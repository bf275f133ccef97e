"""Readiness probes shared by the children that have no API of their own to ask (nginx, sshd)."""

from __future__ import annotations

import asyncio
import contextlib

from .spec import Probe


async def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection at host:port."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def tcp_probe(host: str, port: int) -> Probe:
    """A probe: ready once the child listens at host:port."""

    async def probe() -> bool:
        return await port_open(host, port)

    return probe
