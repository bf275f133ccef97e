"""Two cross-site attacks on ComfyUI's public port, played by Chromium through the product's nginx.

Host names under `pods.test` all map to 127.0.0.1 (Chromium's `--host-resolver-rules`), so the
attacker's pages and the victim's ComfyUI are different origins of one site, as two RunPod pods'
`*-3000.proxy.runpod.net` addresses are: the victim's SameSite=Lax cookie goes along.

1. A page POSTs `{"prompt": ...}` in `no-cors` mode to a second origin, which answers 307 to the
   victim's `/prompt`. Chromium follows it with `Origin: null` and the cookie.
2. A page opens a WebSocket to the victim's `/ws` (cross-site WebSocket hijack).

Both must be refused: the fake ComfyUI logs "got prompt" for every POST /prompt it receives, and
the page reports whether its socket opened.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from comfyui_docker.children import nginx
from comfyui_docker.errors import AppError
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace

from .conftest import ARGS, ARTIFACTS, CHROMIUM, needs_chromium
from .live import LiveApp, free_port

pytestmark = [pytest.mark.browser, pytest.mark.nginx, needs_chromium]
PASSWORD = "correct horse battery"
SITE = "pods.test"
BOUNCED: list[str] = []  # the POSTs the attacker's second origin answered with a 307


class Recorder:
    """Wraps the dashboard app: the headers nginx's auth checks carried."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.verify: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/auth/verify":
            self.verify.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@dataclasses.dataclass
class Victim:
    comfyui_port: int
    comfy: Any
    recorder: Recorder

    @property
    def origin(self) -> str:
        return f"http://victim.{SITE}:{self.comfyui_port}"

    def prompts(self) -> int:
        return self.comfy.log_path.read_text(errors="replace").count("got prompt")


def attacker_page(victim: str) -> bytes:
    return f"""<!doctype html><meta charset=utf-8><title>cute cats</title>
<script>
async function csrf(bounce) {{
  await fetch(bounce, {{method: "POST", mode: "no-cors", credentials: "include",
    headers: {{"Content-Type": "text/plain"}},
    body: JSON.stringify({{prompt: {{"1": {{class_type: "EmptyLatentImage", inputs: {{}}}}}}}})}});
  return "sent";
}}
function hijack() {{
  return new Promise((done) => {{
    const ws = new WebSocket("{victim.replace("http://", "ws://")}/ws?clientId=evil");
    ws.onopen = () => done("open");
    ws.onerror = () => done("refused");
    setTimeout(() => done("timeout"), 8000);
  }});
}}
</script>""".encode()


class Attacker(BaseHTTPRequestHandler):
    victim = ""
    bounced: list[str] = []  # noqa: RUF012 - one list per test server (see the fixture)

    def log_message(self, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        body = attacker_page(self.victim)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the second origin: 307 keeps the method and the body
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.bounced.append(self.path)
        self.send_response(307)
        self.send_header("Location", f"{self.victim}/prompt")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    from fakes.comfyui_root.launch import run_comfyui

    try:
        binary = nginx.find_binary()
    except AppError as exc:
        pytest.skip(f"needs nginx: {exc}")
    base = tmp_path_factory.mktemp("attack")
    with run_comfyui(base / "comfy") as comfy:
        env = {
            "WORKSPACE_ROOT": str(base / "ws"),
            "ENABLE_NGINX": "true",
            "ACCESS_PASSWORD": PASSWORD,
            "DASHBOARD_PORT": str(free_port()),
            "COMFYUI_PORT": str(free_port()),
            "COMFYUI_INTERNAL_PORT": str(comfy.port),
            "DASHBOARD_INTERNAL_PORT": str(free_port()),
        }
        live = LiveApp(Settings.from_env(env, cwd=base))
        recorder = Recorder(live.app)
        live.server.config.app = recorder
        live.start()
        settings = dataclasses.replace(live.settings, dashboard_internal_port=live.port)
        conf = nginx.write_config(
            settings, Workspace(settings.workspace_root), base / "run", listen_host="127.0.0.1"
        )
        nginx.check(conf, binary)
        log = (base / "nginx.log").open("wb")
        proc = subprocess.Popen(
            nginx.argv(conf, binary), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 10
            while not (base / "run" / "nginx.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            yield Victim(settings.comfyui_port, comfy, recorder)
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()
            live.stop()


@pytest.fixture(scope="module")
def attacker(victim: Victim) -> Iterator[int]:
    handler = type("Handler", (Attacker,), {"victim": victim.origin, "bounced": BOUNCED})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(victim: Victim) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*ARGS, f"--host-resolver-rules=MAP *.{SITE} 127.0.0.1"],
        )
        context = browser.new_context()
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        # the victim logs in on ComfyUI's port, as on a pod
        pg.goto(f"{victim.origin}/")
        assert "/login" in pg.url
        pg.fill("#password", PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{victim.origin}/")
        yield pg
        browser.close()


def test_a_redirected_no_cors_post_cannot_queue_a_prompt(page: Any, victim: Victim, attacker: int) -> None:
    before = victim.prompts()
    page.goto(f"http://attacker.{SITE}:{attacker}/")
    assert page.evaluate(f"csrf('http://bounce.{SITE}:{attacker}/')") == "sent"
    page.wait_for_timeout(500)
    assert BOUNCED
    # Chromium did follow the 307 with the cookie and `Origin: null`: nginx asked the dashboard
    followed = [
        h
        for h in victim.recorder.verify
        if h.get("x-original-method") == "POST" and h.get("origin") == "null"
    ]
    assert followed and "cd_session=" in followed[-1].get("cookie", "")
    assert victim.prompts() == before  # ... and ComfyUI never saw the prompt
    page.screenshot(path=str(ARTIFACTS / "attack-csrf.png"))


def test_a_cross_site_page_cannot_open_comfyui_websocket(page: Any, victim: Victim, attacker: int) -> None:
    page.goto(f"http://attacker.{SITE}:{attacker}/")
    assert page.evaluate("hijack()") == "refused"
    upgrades = [h for h in victim.recorder.verify if h.get("x-original-upgrade", "").lower() == "websocket"]
    assert upgrades and upgrades[-1]["origin"] == f"http://attacker.{SITE}:{attacker}"
    # ComfyUI's own page still opens it
    page.goto(f"{victim.origin}/")
    opened = page.evaluate(
        """() => new Promise((done) => {
            const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws?clientId=own");
            ws.onopen = () => done("open"); ws.onerror = () => done("refused");
        })"""
    )
    assert opened == "open"


def test_comfyui_own_page_still_queues_prompts(page: Any, victim: Victim) -> None:
    before = victim.prompts()
    status = page.evaluate(
        """async () => (await fetch("/prompt", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({prompt: {}})})).status"""
    )
    assert status == 400  # ComfyUI's own answer to an empty prompt: it got there
    assert victim.prompts() == before + 1
