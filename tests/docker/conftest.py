"""Fixtures for the image's tests (helpers live in image_helpers.py)."""

from __future__ import annotations

import pytest
from image_helpers import nginx_or_skip


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return nginx_or_skip()
