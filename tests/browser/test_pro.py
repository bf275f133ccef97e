"""Pro: the log tail follows live lines and searches; the ComfyUI queue is listed."""

from __future__ import annotations

from typing import Any

import pytest

from comfyui_docker.events import LogLine

from .conftest import needs_chromium
from .live import LiveApp

pytestmark = [pytest.mark.browser, needs_chromium]


def test_log_tail_follow_and_search(page: Any, stack: LiveApp) -> None:
    logs = stack.settings.workspace_root / "logs"
    (logs / "comfyui.log").write_text("".join(f"line {i} from before\n" for i in range(30)) + "got prompt\n")
    (logs / "dashboard.log").write_text("dashboard started\n")
    page.goto(stack.url + "/pro")
    view = page.locator("#log-view")
    view.get_by_text("got prompt").wait_for()
    page.wait_for_function("window.Alpine && Alpine.store('cd').live")
    stack.call(stack.services.bus.publish, LogLine(source="comfyui", line="Prompt executed in 0.01 seconds"))
    view.get_by_text("Prompt executed in 0.01 seconds").wait_for()
    stack.call(stack.services.bus.publish, LogLine(source="dashboard", line="not this log"))
    page.fill('input[aria-label="Search the log"]', "prompt")
    page.wait_for_function("document.querySelectorAll('#log-view div').length === 2")
    assert "not this log" not in view.inner_text()
    page.select_option('select[aria-label="Log"]', "dashboard")
    page.fill('input[aria-label="Search the log"]', "")
    view.get_by_text("dashboard started").wait_for()
    # The queue card read ComfyUI's (empty) queue through the API.
    assert page.locator("#queue-list").get_by_text("nothing").count() == 2
    page.watch.shot("flow-pro-logs")
    assert page.watch.errors == [], page.watch.failed
