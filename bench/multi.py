"""One ComfyUI per GPU: throughput of N instances against one, through the dashboard.

    .venv/bin/python bench/multi.py [--counts 2,4] [--prompts 16] [--run-s 0.4] [--rounds 3]

Run it alone: `flock /tmp/cd-bench.lock .venv/bin/python bench/multi.py`.

N fake ComfyUIs share one volume (a port and a temp folder each, as COMFYUI_GPUS runs them); every
prompt runs a fixed time on its instance (`--run-s`: ColorTransfer of 8 frames at
FAKE_COMFYUI_STEP_SECONDS = run-s / 8, plus the fake's few milliseconds around it), as a GPU would.
The dashboard (create_app, served by uvicorn on 127.0.0.1 in this process) has a gateway over the
N instances. A client opens `/api/comfyui/ws` (merged over the instances), posts `--prompts`
prompts at once to `/api/comfyui/prompt` (each goes to the shortest queue) and waits for every
`execution_success` frame: throughput = prompts / seconds from the first post to the last frame.

The peer is today's setup: the same dashboard with one ComfyUI (the first instance). A B A B
rounds, medians. Ratio = throughput(N) / throughput(1); target >= 0.9 N. The spread is printed
too (prompts per instance, from each instance's own /history).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from comfyui_docker.comfyui import ComfyUIClient, ComfyUIGateway
from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakes" / "comfyui_root"
FRAMES = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prompt(color: int) -> dict[str, Any]:
    """FRAMES ColorTransfer steps (the fixed run time), then a preview: a new colour each time, so
    no instance answers from its cache."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": FRAMES, "color": color},
        },
        "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}},
        "3": {
            "class_type": "ColorTransfer",
            "inputs": {
                "image_target": ["1", 0],
                "image_ref": ["2", 0],
                "method": "mkl_lab",
                "source_stats": "per_frame",
                "strength": 1.0,
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


@contextlib.contextmanager
def instances(volume: Path, count: int, run_s: float) -> Iterator[list[str]]:
    """`count` fake ComfyUIs on `volume`; their URLs."""
    env = {**os.environ, "FAKE_COMFYUI_STEP_SECONDS": str(run_s / FRAMES)}
    for sub in ("output", "uploads", "config"):
        (volume / sub).mkdir(parents=True, exist_ok=True)
    yaml = volume / "config" / "extra_model_paths.yaml"
    yaml.write_text(f"vol:\n  base_path: {volume}\n  checkpoints: models/checkpoints\n", encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for n in range(count):
            port = free_port()
            argv = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--cpu"]
            argv += [
                "--output-directory",
                str(volume / "output"),
                "--input-directory",
                str(volume / "uploads"),
            ]
            argv += ["--temp-directory", str(volume / f"temp-{n}"), "--extra-model-paths-config", str(yaml)]
            log = (volume / f"comfyui-{n}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    argv, cwd=FAKE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_ready(session: aiohttp.ClientSession, urls: list[str]) -> None:
    for url in urls:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/system_stats") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit(f"the fake ComfyUI at {url} did not start")


@contextlib.asynccontextmanager
async def dashboard(root: Path, session: aiohttp.ClientSession, urls: list[str]) -> AsyncIterator[str]:
    """The dashboard over the ComfyUIs at `urls` (a gateway with one client each); its base URL."""
    env = {
        "WORKSPACE_ROOT": str(root),
        "ENABLE_PRESET_MANAGER": "false",
        "COMFYUI_INTERNAL_PORT": urls[0].rsplit(":", 1)[1],  # one ComfyUI: the proxy's plain path
    }
    settings = Settings.from_env(env, cwd=root.parent)
    services = Services.create(settings)
    services.workspace.init()
    clients = [ComfyUIClient(session, url, name=f"comfyui-{n}") for n, url in enumerate(urls)]
    services.comfyui = ComfyUIGateway(*clients)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, services), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def one_round(session: aiohttp.ClientSession, base: str, count: int, color: int) -> float:
    """Seconds from the first post to the last prompt's end, `count` prompts posted at once."""
    client_id = f"bench-{color}"
    async with session.ws_connect(f"ws://{base}/api/comfyui/ws?clientId={client_id}", max_msg_size=0) as ws:
        await ws.receive(timeout=10)  # the status frame: every instance is joined

        async def post(n: int) -> str:
            body = {"prompt": prompt(color + n), "client_id": client_id}
            async with session.post(f"http://{base}/api/comfyui/prompt", json=body) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"POST /prompt: {resp.status} {answer}")
                return str(answer["prompt_id"])

        started = time.perf_counter()
        ids = set(await asyncio.gather(*(post(n) for n in range(count))))
        done: set[str] = set()
        async with asyncio.timeout(600):
            while not ids <= done:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise SystemExit(f"the WebSocket ended: {msg}")
                frame = json.loads(msg.data)
                if frame["type"] in ("execution_success", "execution_error"):
                    done.add(frame["data"]["prompt_id"])
        return time.perf_counter() - started


async def spread(session: aiohttp.ClientSession, urls: list[str]) -> list[int]:
    counts = []
    for url in urls:
        async with session.get(f"{url}/history") as resp:
            counts.append(len(await resp.json()))
    return counts


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="2,4", help="instance counts to compare with one (default 2,4)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts posted at once per round (default 16)")
    ap.add_argument("--run-s", type=float, default=0.4, help="seconds each prompt runs (default 0.4)")
    ap.add_argument("--rounds", type=int, default=3, help="A B pairs per count (default 3)")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    work = Path(tempfile.mkdtemp(prefix="cd-bench-multi-"))
    print(f"{args.prompts} prompts of {args.run_s:g} s each, posted at once to /api/comfyui/prompt")
    print(f"{args.rounds} rounds, A (one ComfyUI) B (N ComfyUIs) alternated; medians")
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            for count in counts:
                with instances(work / f"vol-{count}", count, args.run_s) as urls:
                    await wait_ready(session, urls)
                    async with (
                        dashboard(work / f"ws1-{count}", session, urls[:1]) as one,
                        dashboard(work / f"wsN-{count}", session, urls) as many,
                    ):
                        await one_round(session, many, count, color=1)  # warm-up: connections, imports
                        before = await spread(session, urls)
                        times: dict[str, list[float]] = {"one": [], "many": []}
                        color = 1000
                        for _ in range(args.rounds):
                            for label, base in (("one", one), ("many", many)):
                                color += 1000
                                times[label].append(await one_round(session, base, args.prompts, color))
                        after = await spread(session, urls)
                t1, tn = statistics.median(times["one"]), statistics.median(times["many"])
                rate1, raten = args.prompts / t1, args.prompts / tn
                per = [a - b for a, b in zip(after, before, strict=True)]
                shown = {k: ", ".join(f"{t:.2f}" for t in v) for k, v in times.items()}
                print(f"N={count}: {raten:6.2f} prompts/s (median {tn:.2f} s of {shown['many']})")
                print(f"     peer, one ComfyUI: {rate1:6.2f} prompts/s (median {t1:.2f} s of {shown['one']})")
                print(f"     ratio {raten / rate1:.2f} (target >= {0.9 * count:.1f})")
                print(f"     prompts per instance, all rounds: {per} (instance 0 also ran the peer's)")
                rows.append((count, raten / rate1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdict = all(ratio >= 0.9 * count for count, ratio in rows)
    print("target met" if verdict else "target NOT met")


if __name__ == "__main__":
    asyncio.run(main())
