"""The Generate flow against a real ComfyUI (COMFYUI_ROOT), when one is available."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import needs_chromium, running_stack
from .live import LiveApp

pytestmark = [pytest.mark.browser, pytest.mark.real_comfyui, needs_chromium]


@pytest.fixture(scope="module")
def real_stack(tmp_path_factory: pytest.TempPathFactory, model_host: Any) -> Iterator[LiveApp]:
    from fakes.comfyui_root.launch import real_comfyui_root

    root, why = real_comfyui_root()
    if root is None:
        pytest.skip(f"real ComfyUI: {why}")
    with running_stack(tmp_path_factory.mktemp("real"), f"http://127.0.0.1:{model_host.port}", root) as live:
        yield live


def test_generate_demo_on_real_comfyui(page: Any, real_stack: LiveApp) -> None:
    page.goto(real_stack.url + "/generate")
    page.wait_for_function("window.Alpine && Alpine.store('cd').live")
    page.fill("#f-width", "80")
    page.fill("#f-height", "48")
    page.click("#queue-btn")
    page.wait_for_function(
        "(document.querySelector('#gen-images img') || {}).naturalWidth === 80",
        timeout=60_000,
    )
    assert page.locator("#gen-status .badge").inner_text() == "done"
    page.watch.shot("flow-generate-demo-real-comfyui")
    assert page.watch.errors == [], page.watch.failed
