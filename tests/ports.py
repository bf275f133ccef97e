"""Loopback ports for the tests' servers.

`free_port()` binds port 0 and gives back what the kernel chose, closed again. Two such calls in a
row can return the same port (the first socket is closed before the second asks), and then two
servers of one test, or a setting and its neighbour, collide. Every port handed out here is
remembered for the whole test run and never handed out twice.
"""

from __future__ import annotations

import socket

_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no other caller got."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
