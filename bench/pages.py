"""Dashboard pages in Chromium: weight, time to first byte, `load`, and event -> progress bar delay.

    .venv/bin/python bench/pages.py [--rounds 7]

For each section it prints, in one run:
  * JS + CSS gzip bytes referenced by the page (target <= 50 KB) and the HTML's gzip bytes;
  * TTFB and `load` from Chromium's navigation timing, cold cache (a new browser context per
    visit), median of `rounds`. Peer: the very same HTML and assets saved to disk and served
    by Starlette's StaticFiles on uvicorn (the floor for these bytes on this machine). Visits
    alternate ours / peer (A B A B). Target: `load` < 300 ms on loopback;
  * the delay from `bus.publish(DownloadProgress)` in the server to the Home page's progress bar
    changing (MutationObserver time), next to the delay to the raw WebSocket message reaching the
    page (the peer: what the transport alone costs). Target: < 100 ms.
Needs /usr/bin/chromium and the built front-end (make install).
"""

from __future__ import annotations

import argparse
import gzip
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser.conftest import ARGS, CHROMIUM  # noqa: E402
from browser.live import LiveApp, free_port  # noqa: E402
from comfyui_docker.events import DownloadProgress, TaskState  # noqa: E402
from comfyui_docker.settings import Settings  # noqa: E402
from comfyui_docker.web.pages.rendering import NAV  # noqa: E402
from comfyui_docker.web.pages.static import STATIC  # noqa: E402

SECTIONS = {label.lower(): path for path, label in NAV}  # the dashboard's own menu
BUDGET = 50 * 1024


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def weight(base: str, path: str) -> tuple[int, int, str]:
    html = fetch(base + path).decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+\.(?:js|css)\?v=[0-9a-f]+)"', html)
    total = sum(len(gzip.compress(fetch(base + a), 9)) for a in assets)
    return total, len(gzip.compress(html.encode(), 9)), html


class StaticPeer:
    """The same pages as files, served by StaticFiles on uvicorn."""

    def __init__(self, pages: dict[str, str]) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Mount
        from starlette.staticfiles import StaticFiles

        self.dir = Path(tempfile.mkdtemp(prefix="pages-peer-"))
        for name, html in pages.items():
            (self.dir / name).mkdir()
            (self.dir / name / "index.html").write_text(html)
        app = Starlette(
            routes=[
                Mount("/static", StaticFiles(directory=STATIC)),
                Mount("/", StaticFiles(directory=self.dir, html=True)),
            ]
        )
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


NAV_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
  return [n.responseStart - n.startTime, n.loadEventEnd - n.startTime]; }"""


def visit(browser: Any, url: str) -> tuple[float, float]:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
    ttfb, load = page.evaluate(NAV_JS)
    ctx.close()
    return float(ttfb), float(load)


def progress_latency(browser: Any, live: LiveApp, rounds: int) -> tuple[list[float], list[float]]:
    page = browser.new_page()
    page.goto(live.url + "/")
    page.wait_for_function("window.Alpine && Alpine.store('cd').live")
    bus = live.services.bus
    live.call(
        bus.publish,
        TaskState(task_id="bench", preset_id="BENCH", state="downloading", bytes_done=0, bytes_total=1000),
    )
    page.wait_for_selector("#home-tasks .bar > div", state="attached")
    page.evaluate("""() => {
      window.benchBar = []; window.benchWs = [];
      const bar = document.querySelector('#home-tasks .bar > div');
      new MutationObserver(() => window.benchBar.push(performance.timeOrigin + performance.now()))
        .observe(bar, {attributes: true});
      cd.on('download_progress', () => window.benchWs.push(performance.timeOrigin + performance.now()));
    }""")
    sent: list[float] = []
    for i in range(1, rounds + 1):
        n = page.evaluate("window.benchBar.length")
        event = DownloadProgress(
            task_id="bench",
            preset_id="BENCH",
            file="x",
            bytes_done=i * 1000 // (rounds + 1),
            bytes_total=1000,
        )

        def publish(ev: DownloadProgress = event) -> None:
            sent.append(time.time() * 1000)
            bus.publish(ev)

        live.call(publish)
        page.wait_for_function(f"window.benchBar.length > {n}")
        time.sleep(0.05)
    bar = page.evaluate("window.benchBar")
    ws = page.evaluate("window.benchWs")
    page.close()
    return [b - s for b, s in zip(bar, sent, strict=False)], [w - s for w, s in zip(ws, sent, strict=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium")
        return 1
    if not (STATIC / "app.css").is_file():
        print("front-end not built: run make install")
        return 1
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    live = LiveApp(Settings.from_env({"WORKSPACE_ROOT": str(tmp / "ws")})).start()
    try:
        weights = {name: weight(live.url, path) for name, path in SECTIONS.items()}
        peer = StaticPeer({name: w[2] for name, w in weights.items()})
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            print(
                f"{'section':10} {'JS+CSS gz':>10} {'HTML gz':>8} | {'TTFB ms':>8} {'peer':>6} | "
                f"{'load ms':>8} {'peer':>6} {'ratio':>6}"
            )
            worst_load = 0.0
            for name, path in SECTIONS.items():
                ours: list[tuple[float, float]] = []
                theirs: list[tuple[float, float]] = []
                visit(browser, live.url + path)  # warm the server (templates compiled once)
                for _ in range(args.rounds):
                    ours.append(visit(browser, live.url + path))
                    theirs.append(visit(browser, f"{peer.url}/{name}/"))
                o_ttfb = statistics.median(t for t, _ in ours)
                p_ttfb = statistics.median(t for t, _ in theirs)
                o_load = statistics.median(x for _, x in ours)
                p_load = statistics.median(x for _, x in theirs)
                worst_load = max(worst_load, o_load)
                js_css, html_gz, _ = weights[name]
                flag = "" if js_css <= BUDGET else "  OVER BUDGET"
                print(
                    f"{name:10} {js_css:>10,} {html_gz:>8,} | {o_ttfb:>8.1f} {p_ttfb:>6.1f} | "
                    f"{o_load:>8.1f} {p_load:>6.1f} {o_load / p_load:>6.2f}{flag}"
                )
            bar, ws = progress_latency(browser, live, max(20, args.rounds * 3))
            browser.close()
        peer.stop()
        print()
        print(
            f"targets: JS+CSS <= {BUDGET:,} B gzip per page; load < 300 ms "
            f"(worst median here: {worst_load:.1f} ms)"
        )
        print(
            f"event -> progress bar changed: p50 {statistics.median(bar):.1f} ms, max {max(bar):.1f} ms "
            f"(n={len(bar)}, target < 100 ms)"
        )
        print(
            "event -> WebSocket message in the page (peer, transport only): "
            f"p50 {statistics.median(ws):.1f} ms, "
            f"max {max(ws):.1f} ms; ratio {statistics.median(bar) / max(statistics.median(ws), 0.01):.2f}"
        )
    finally:
        live.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
