"""Fixtures for the image's tests (helpers live in image_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from image_helpers import nginx_or_skip


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return nginx_or_skip()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps no cookies (each test sends its own) and gives up after 30 s."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session
