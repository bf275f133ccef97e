"""Dashboard API benchmark: our app next to a bare uvicorn "hello" app, in one run.

    .venv/bin/python bench/api.py [--quick] [--only http|proxy|events] [--nginx-buffering NAME]

Prints, each time as ours / peer / ratio:
1. p50/p95/p99 latency and requests/s of `GET /health` and `GET /api/presets` (real PresetService,
   shipped catalog, password set, Bearer token sent) at concurrency 1 and 50, against a bare
   FastAPI app on the same uvicorn settings answering `/health` (the peer). Rounds alternate
   A B A B; the medians of the rounds are reported.
2. Proxy throughput: a 100 MB `/view` of the (fake) ComfyUI, MB/s, ratio to ComfyUI direct and
   CPU-seconds per 100 MB, three ways: direct; the public dashboard port as in the image, i.e. the
   product's own nginx config (nginx.write_config, password set, Bearer token sent) where nginx
   carries `/api/comfyui/` to ComfyUI after an auth_request to the dashboard (the target applies
   to this path); and the dashboard's Python proxy as `make run` serves it without nginx. Same
   client and chunk handling for every target; one warm-up fetch each (connections, first
   request, page cache), then 7 rounds (3 with --quick) alternating direct / image / Python,
   medians. Memory: the dashboard's RSS and the largest nginx worker RSS, before and at peak.
   `--nginx-buffering` swaps that route's buffering for one of BUFFERING (what it was chosen from).
3. Event latency: publish on the bus (inside the server) -> JSON frame received by a WebSocket
   client, p50/p99 over 500 events.

Servers run as separate processes (uvicorn with httptools and, as in the product, the stdlib
asyncio loop; BENCH_LOOP=uvloop to compare; no access log); the load generator is aiohttp in this
process. Targets (issue 5): c=1 p95 < 5 ms; c=50 /health p95 <= 1.2x and /api/presets p95 <= 2x
the bare app's; proxy >= 0.8x direct with flat memory; events p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fake ComfyUI launcher
PASSWORD = "bench-password"


# ---------------------------------------------------------------------------------------------
# server side (run as a subprocess: `bench/api.py --serve ours|hello --port P ...`)


def serve(kind: str, port: int, workspace: str, comfyui_port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    if kind == "hello":
        app = FastAPI()

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

    else:
        from comfyui_docker.events import DownloadProgress
        from comfyui_docker.settings import Settings
        from comfyui_docker.web.app import create_app

        settings = Settings.from_env(
            {
                "WORKSPACE_ROOT": workspace,
                "ACCESS_PASSWORD": PASSWORD,
                "COMFYUI_INTERNAL_PORT": str(comfyui_port),
            }
        )
        app = create_app(settings)
        app.state.dashboard.services.workspace.init()

        @app.post("/bench/publish")  # bench-only route, added here, not part of the product
        async def publish(n: int = 500, gap_ms: float = 5.0) -> dict[str, int]:
            bus = app.state.dashboard.services.bus
            for i in range(n):
                bus.publish(
                    DownloadProgress(task_id="bench", preset_id="X", file="f", bytes_done=i, bytes_total=n)
                )
                await asyncio.sleep(gap_ms / 1000)
            return {"published": n}

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=os.environ.get("BENCH_LOOP", "asyncio"),
    )


# ---------------------------------------------------------------------------------------------
# client side


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, kind: str, workspace: str, comfyui_port: int = 1) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--port",
                str(self.port),
                "--workspace",
                workspace,
                "--comfyui-port",
                str(comfyui_port),
            ],
            cwd=REPO,
        )

    async def wait(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(self.url + "/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not start")

    def rss(self) -> int:
        return rss_of(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc)


async def load(url: str, concurrency: int, total: int, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as http:
        for _ in range(min(20, total)):  # warm-up
            async with http.get(url) as r:
                await r.read()
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url} -> {r.status}")
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "rps": len(latencies) / wall}


def med(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def line(label: str, ours: dict[str, float], peer: dict[str, float]) -> str:
    return (
        f"{label:<34} ours p50 {ours['p50']:6.2f} p95 {ours['p95']:6.2f} p99 {ours['p99']:6.2f} ms "
        f"{ours['rps']:7.0f} req/s | bare p50 {peer['p50']:6.2f} p95 {peer['p95']:6.2f} "
        f"p99 {peer['p99']:6.2f} ms {peer['rps']:7.0f} req/s | p95 ratio {ours['p95'] / peer['p95']:.2f}"
    )


async def bench_http(ours: Server, hello: Server, token: str, rounds: int, n1: int, n50: int) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    print("== HTTP latency (ms) and throughput; A B A B rounds, medians ==")
    for conc, total in ((1, n1), (50, n50)):
        res: dict[str, list[dict[str, float]]] = {"health": [], "presets": [], "hello": []}
        for _ in range(rounds):
            res["health"].append(await load(ours.url + "/health", conc, total, {}))
            res["hello"].append(await load(hello.url + "/health", conc, total, {}))
            res["presets"].append(await load(ours.url + "/api/presets", conc, total, auth))
        peer = med(res["hello"])
        print(line(f"GET /health        c={conc}", med(res["health"]), peer))
        print(line(f"GET /api/presets   c={conc}", med(res["presets"]), peer))


async def fetch_all(http: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    async with http.get(url) as r:
        assert r.status == 200, r.status
        async for chunk in r.content.iter_chunked(1 << 20):
            n += len(chunk)
    return n, time.perf_counter() - t0


def task_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` (user + system, nanosecond schedstat), in seconds."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
            total += int(fh.read().split()[0])
    return total / 1e9


# nginx buffering choices for the /api/comfyui/ route, tried with --nginx-buffering (the product's
# choice is nginx.API_BUFFERING; the others are what it was measured against).
BUFFERING = {
    "off-8k": ("proxy_buffering off;",),
    "off-256k": (
        "proxy_buffering off;",
        "proxy_buffer_size 256k;",
        "proxy_buffers 4 256k;",
        "proxy_busy_buffers_size 512k;",
    ),
    "off-1m": (
        "proxy_buffering off;",
        "proxy_buffer_size 1m;",
        "proxy_buffers 4 1m;",
        "proxy_busy_buffers_size 2m;",
    ),
    "on-1m": (
        "proxy_buffering on;",
        "proxy_buffer_size 1m;",
        "proxy_buffers 8 1m;",
        "proxy_busy_buffers_size 2m;",
        "proxy_max_temp_file_size 0;",
    ),
    "on-256k": (
        "proxy_buffering on;",
        "proxy_buffer_size 256k;",
        "proxy_buffers 8 256k;",
        "proxy_busy_buffers_size 512k;",
        "proxy_max_temp_file_size 0;",
    ),
    "on-64k": (
        "proxy_buffering on;",
        "proxy_buffer_size 64k;",
        "proxy_buffers 16 64k;",
        "proxy_busy_buffers_size 128k;",
        "proxy_max_temp_file_size 0;",
    ),
}


class ProductNginx:
    """The image's nginx: the product's own config (nginx.write_config) with ACCESS_PASSWORD set,
    so `/api/comfyui/` on the public dashboard port goes nginx -> ComfyUI after an auth_request to
    the dashboard, exactly as in the image. Skipped when nginx is not installed."""

    def __init__(self, workdir: Path, workspace: str, dashboard_port: int, comfyui_port: int) -> None:
        from comfyui_docker.children import nginx
        from comfyui_docker.settings import Settings
        from comfyui_docker.workspace import Workspace

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings.from_env(
            {
                "WORKSPACE_ROOT": workspace,
                "ACCESS_PASSWORD": PASSWORD,
                "ENABLE_NGINX": "true",
                "DASHBOARD_PORT": str(self.port),
                "COMFYUI_PORT": str(free_port()),
                "DASHBOARD_INTERNAL_PORT": str(dashboard_port),
                "COMFYUI_INTERNAL_PORT": str(comfyui_port),
            }
        )
        conf = nginx.write_config(
            settings, Workspace(settings.workspace_root), workdir, listen_host="127.0.0.1"
        )
        self.text = conf.read_text()
        self.proc = subprocess.Popen(nginx.argv(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if len(self.worker_pids()) >= 1:
                break
            time.sleep(0.02)

    @classmethod
    def start(
        cls, workdir: Path, workspace: str, dashboard_port: int, comfyui_port: int
    ) -> ProductNginx | None:
        from comfyui_docker.children import nginx

        try:
            nginx.find_binary()
        except nginx.NginxError:
            return None
        return cls(workdir, workspace, dashboard_port, comfyui_port)

    def worker_pids(self) -> list[int]:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except OSError:
            return []

    def cpu(self) -> float:
        return sum(task_cpu_seconds(p) for p in self.worker_pids())

    def worker_rss(self) -> int:
        """The largest RSS of one worker (each request is handled by one worker)."""
        return max((rss_of(p) for p in self.worker_pids()), default=0)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def bench_proxy(
    ours: Server, comfy_url: str, token: str, rounds: int, nginx: ProductNginx | None
) -> None:
    print("== Proxy: 100 MB /view of ComfyUI, three ways (A B C A B C rounds, medians) ==")
    auth = {"Authorization": f"Bearer {token}"}
    query = "/view?filename=bench100.bin&type=output"
    dash_cpu = lambda: task_cpu_seconds(ours.proc.pid)  # noqa: E731
    targets: list[tuple[str, str, Any]] = [("direct", comfy_url + query, None)]
    if nginx is not None:
        # auth_request asks the dashboard once per request: its CPU counts too
        targets.append(("image", nginx.url + "/api/comfyui" + query, lambda: nginx.cpu() + dash_cpu()))
    targets.append(("python", ours.url + "/api/comfyui" + query, dash_cpu))
    speed: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    async with aiohttp.ClientSession(headers=auth) as http:
        for _, url, _ in targets:  # warm-up: connections opened, first-request work done, file cached
            await fetch_all(http, url)
        base_rss = ours.rss()
        base_worker = nginx.worker_rss() if nginx is not None else 0
        peak = [base_rss, base_worker]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], ours.rss())
                if nginx is not None:
                    peak[1] = max(peak[1], nginx.worker_rss())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for _ in range(rounds):
                for name, url, cpu_of in targets:
                    c0 = cpu_of() if cpu_of else 0.0
                    n, s = await fetch_all(http, url)
                    assert n == 100 * 2**20, n
                    cpu[name].append((cpu_of() - c0) if cpu_of else 0.0)
                    speed[name].append(n / s / 1e6)
        finally:
            stop.set()
            sampler.join()
    d = statistics.median(speed["direct"])
    print(f"direct from ComfyUI                          {d:8.1f} MB/s")
    if nginx is not None:
        g = statistics.median(speed["image"])
        print(
            f"public dashboard port as in the image        {g:8.1f} MB/s | ratio {g / d:.2f} "
            f"(target >= 0.8) | {statistics.median(cpu['image']):.3f} CPU-s per 100 MB "
            "(nginx workers + dashboard)\n"
            f"  (nginx -> ComfyUI, auth_request to the dashboard, Bearer token; buffering: "
            f"{' '.join(nginx_buffering_now())})"
        )
    else:
        print("public dashboard port as in the image: skipped (nginx is not installed)")
    p = statistics.median(speed["python"])
    print(
        f"Python fallback (dashboard, `make run`)      {p:8.1f} MB/s | ratio {p / d:.2f} | "
        f"{statistics.median(cpu['python']):.3f} CPU-s per 100 MB (dashboard process)"
    )
    print("  rounds (MB/s): " + "; ".join(f"{k} {[round(x) for x in v]}" for k, v in speed.items()))
    n_proxied = rounds * (len(targets) - 1) * 100
    print(
        f"dashboard RSS before {base_rss / 2**20:.1f} MiB, peak during {n_proxied} MB proxied "
        f"{peak[0] / 2**20:.1f} MiB (+{(peak[0] - base_rss) / 2**20:.1f} MiB)"
    )
    if nginx is not None:
        print(
            f"nginx worker RSS before {base_worker / 2**20:.1f} MiB, peak {peak[1] / 2**20:.1f} MiB "
            f"(+{(peak[1] - base_worker) / 2**20:.1f} MiB)"
        )


def nginx_buffering_now() -> tuple[str, ...]:
    from comfyui_docker.children import nginx

    return nginx.API_BUFFERING


async def bench_events(ours: Server, token: str, n: int) -> None:
    print("== Event latency: bus.publish -> WebSocket client ==")
    auth = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        http.ws_connect(ours.url.replace("http", "ws") + "/ws?types=download_progress") as ws,
    ):
        await ws.receive()  # hello
        trigger = asyncio.create_task(http.post(ours.url + f"/bench/publish?n={n}&gap_ms=5"))
        while len(lat) < n:
            msg = await ws.receive(timeout=30)
            now = time.time()
            data = json.loads(msg.data)
            lat.append((now - data["ts"]) * 1000)
        (await trigger).release()
    lat.sort()
    print(
        f"{n} events: p50 {lat[n // 2]:.2f} ms, p99 {lat[int(n * 0.99) - 1]:.2f} ms, "
        f"max {lat[-1]:.2f} ms (target p99 < 50 ms)"
    )


async def main(quick: bool, only: str | None = None, buffering: str = "product") -> None:
    from comfyui_docker.settings import Settings
    from comfyui_docker.web.auth import Auth
    from fakes.comfyui_root.launch import run_comfyui

    if buffering != "product":
        from comfyui_docker.children import nginx

        nginx.API_BUFFERING = BUFFERING[buffering]

    rounds = 2 if quick else 3
    n1, n50 = (500, 2000) if quick else (1500, 5000)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, run_comfyui(Path(tmp) / "comfy") as comfy:
        big = comfy.layout.output / "bench100.bin"
        with big.open("wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(100):
                fh.write(block)
        ws = str(Path(tmp) / "ws")
        token = Auth(Settings.from_env({"WORKSPACE_ROOT": ws, "ACCESS_PASSWORD": PASSWORD})).api_token() or ""
        ours = Server("ours", ws, comfy.port)
        hello = Server("hello", ws)
        try:
            await ours.wait()
            await hello.wait()
            print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
            if only in (None, "http"):
                await bench_http(ours, hello, token, rounds, n1, n50)
            if only in (None, "proxy"):
                nginx = ProductNginx.start(Path(tmp) / "nginx", ws, ours.port, comfy.port)
                try:
                    await bench_proxy(ours, comfy.url, token, 3 if quick else 7, nginx)
                finally:
                    if nginx is not None:
                        nginx.stop()
            if only in (None, "events"):
                await bench_events(ours, token, 300 if quick else 500)
        finally:
            ours.stop()
            hello.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=("ours", "hello"))
    ap.add_argument("--port", type=int)
    ap.add_argument("--workspace")
    ap.add_argument("--comfyui-port", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    ap.add_argument("--only", choices=("http", "proxy", "events"), help="run one part only")
    ap.add_argument(
        "--nginx-buffering",
        choices=("product", *BUFFERING),
        default="product",
        help="nginx buffering of the /api/comfyui/ route (default: the product's)",
    )
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workspace, args.comfyui_port)
    else:
        asyncio.run(main(args.quick, args.only, args.nginx_buffering))
