"""Each section loads in Chromium without console errors, at desktop and phone widths."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import needs_chromium
from .live import LiveApp

pytestmark = [pytest.mark.browser, needs_chromium]

SECTIONS = {
    "home": "/",
    "outputs": "/outputs",
    "generate": "/generate",
    "models": "/models",
    "workflows": "/workflows",
    "nodes": "/nodes",
    "settings": "/settings",
    "pro": "/pro",
}


@pytest.mark.parametrize("name", list(SECTIONS))
def test_section_loads_clean(page: Any, stack: LiveApp, name: str) -> None:
    resp = page.goto(stack.url + SECTIONS[name])
    assert resp.status == 200
    page.wait_for_load_state("networkidle")
    # Alpine started and the events socket is live (the dot in the header turns green).
    page.wait_for_function("window.Alpine && Alpine.store('cd') && Alpine.store('cd').live === true")
    assert page.locator("#no-password-warning").is_visible()
    assert page.locator('nav a[aria-current="page"]').count() == 1
    page.watch.shot(f"{name}-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    # Nothing wider than the phone's screen.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name}: {overflow}px of horizontal overflow at phone width"
    page.watch.shot(f"{name}-phone")
    assert page.watch.errors == [], page.watch.failed
