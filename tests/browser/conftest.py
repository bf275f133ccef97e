"""Browser fixtures: Debian's Chromium driven by Playwright, a live dashboard, the fake ComfyUI,
and a local model host serving a tiny preset from the user's `workspace/config/presets.yaml`.

Never `playwright install`: the browser is /usr/bin/chromium (scripts/install-system-deps.sh).
Screenshots go to test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker.model_paths import render_yaml
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace

from .live import LiveApp

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
TINY_SIZE = 3 * 1024 * 1024
TINY_RATE = 1.5 * 1024 * 1024  # bytes/s per connection: ~2 s, long enough to watch the bar move
WORKFLOW_SIZE = 512 * 1024
SLOW_SIZE = 24 * 1024 * 1024

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/install-system-deps.sh)",
)


def presets_yaml(host_url: str) -> str:
    return f"""\
presets:
  TINY_TEST:
    name: Tiny test checkpoint
    category: text-to-image
    type: image
    description: A 3 MB file served from the local test host (browser tests).
    tags: [test]
    requirements: {{vram_gb: 1, disk_gb: 0.01}}
    files:
      - path: checkpoints/tiny_test.safetensors
        url: {host_url}/tiny_test.safetensors
        size: {TINY_SIZE}
  SLOW_TEST:
    name: Slow test download
    category: test
    type: other
    description: Big enough to cancel half-way (browser tests).
    files:
      - path: checkpoints/slow_test.safetensors
        url: {host_url}/slow_test.safetensors
        size: {SLOW_SIZE}
  SD15_BASE:
    name: Stable Diffusion 1.5 (test copy)
    category: text-to-image
    type: image
    description: Replaces the shipped entry in tests, served from the local host.
    files:
      - path: checkpoints/v1-5-pruned-emaonly-fp16.safetensors
        url: {host_url}/sd15.safetensors
        size: {WORKFLOW_SIZE}
  WORKFLOW_DEPS:
    name: Workflow dependencies
    category: test
    type: image
    description: Provides the LoRA the uploaded test workflow needs.
    files:
      - path: loras/browser_test_lora.safetensors
        url: {host_url}/browser_test_lora.safetensors
        size: {WORKFLOW_SIZE}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def model_host() -> Iterator[Any]:
    from fakes.model_host import ModelHost

    host = ModelHost(rate=TINY_RATE).start()
    host.add("/tiny_test.safetensors", os.urandom(TINY_SIZE))
    host.add("/browser_test_lora.safetensors", os.urandom(WORKFLOW_SIZE))
    host.add("/sd15.safetensors", os.urandom(WORKFLOW_SIZE))
    host.add("/slow_test.safetensors", os.urandom(SLOW_SIZE))
    yield host
    host.stop()


@contextmanager
def running_stack(base: Path, host_url: str, comfyui_root: Path | None = None) -> Iterator[LiveApp]:
    """A ComfyUI (the fake unless `comfyui_root` names a real one) + the dashboard with its relay."""
    from fakes.comfyui_root.launch import FAKE_ROOT, run_comfyui

    ws = Workspace(base)
    ws.ensure()
    ours = base / "config" / "dashboard_model_paths.yaml"
    ours.write_text(render_yaml(ws.models), encoding="utf-8")
    ws.user_presets.write_text(presets_yaml(host_url), encoding="utf-8")
    root = comfyui_root or FAKE_ROOT
    with run_comfyui(base, root=root, yamls=[ours], timeout=30.0 if root == FAKE_ROOT else 120.0) as comfy:
        settings = Settings.from_env(
            {
                "WORKSPACE_ROOT": str(base),
                "COMFYUI_INTERNAL_PORT": str(comfy.port),
                "DOWNLOAD_PARALLEL_FILES": "2",
            }
        )
        live = LiveApp(settings, comfyui_url=comfy.url).start()
        deadline = time.monotonic() + 10
        while not live.services.comfyui.events_connected and time.monotonic() < deadline:
            time.sleep(0.05)  # a prompt queued before the relay listens has no live frames
        try:
            yield live
        finally:
            live.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_host: Any) -> Iterator[LiveApp]:
    """Fake ComfyUI + dashboard (with the relay) sharing one workspace; no password."""
    with running_stack(tmp_path_factory.mktemp("ws"), f"http://127.0.0.1:{model_host.port}") as live:
        yield live


class PageWatch:
    """Console errors, page errors and failed requests seen by one page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.failed: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "response",
            lambda r: (
                self.failed.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
            ),
        )
        self.failed: list[str] = []

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    pg.watch = PageWatch(pg)
    yield pg
    context.close()
