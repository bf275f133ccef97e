"""Serverless benchmark: what a job costs on top of ComfyUI, and cold start to the first job.

    .venv/bin/python bench/serverless.py [--jobs 40] [--rounds 3] [--comfy-delay 12]
        [--comfyui-root DIR --comfyui-python PY]        (a real ComfyUI instead of the fake)

Run it alone: `flock /tmp/cd-bench.lock .venv/bin/python bench/serverless.py`.

1. Job overhead. One `comfyui-docker serverless --rp_serve_api` worker (the RunPod SDK's local
   test server in front of our handler, ComfyUI supervised behind it). The same model-free prompt
   (EmptyImage -> SaveImage, a new colour each time so ComfyUI never answers from its cache) is run
   A B A B: (A, the peer) posted straight to that ComfyUI by a minimal client - WebSocket, POST
   /prompt, frames to the end, /history, /view of the PNG - and (B) posted as a job to /runsync,
   which returns the PNG base64-encoded. Overhead = median(B) - median(A). Target: <= 50 ms at p50.
2. Cold start. (A, ours) launch the worker and post one job to /runsync until it answers; time from
   launch to the job's answer. (B, the peer) launch the same ComfyUI directly and post the same
   prompt as soon as /system_stats answers; time to its PNG. The fake sleeps `--comfy-delay` s
   before listening (a real ComfyUI takes 12-18 s on 2 cores, COMFYUI.md §7). The worker's own log
   lines (ComfyUI ready, first job accepted; seconds since its process started) are shown too.
3. Payload. The fake's (and a real ComfyUI's) EmptyImage PNGs are small; what a real 1024x1024
   PNG (~`--payload-mb` MB) adds is timed in this process: base64 and the SDK's JSON answer
   (FastAPI's `jsonable_encoder`, then `json.dumps`), against writing the same bytes to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakes" / "comfyui_root"
WORKER = [
    sys.executable,
    "-m",
    "comfyui_docker",
    "serverless",
    "--rp_serve_api",
    "--rp_api_host",
    "127.0.0.1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graph(color: int, prefix: str, size: int) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


async def direct(session: aiohttp.ClientSession, url: str, prompt: dict[str, Any]) -> bytes:
    """The peer: one prompt straight to ComfyUI, to the bytes of its first output file."""
    client_id = uuid.uuid4().hex
    async with session.ws_connect(f"{url.replace('http', 'ws', 1)}/ws?clientId={client_id}") as ws:
        async with session.post(f"{url}/prompt", json={"prompt": prompt, "client_id": client_id}) as resp:
            prompt_id = (await resp.json())["prompt_id"]
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            data = frame.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            if frame["type"] in ("execution_error", "execution_interrupted"):
                raise RuntimeError(f"the prompt failed: {frame}")
            if frame["type"] == "executing" and data.get("node") is None:
                break  # after ComfyUI recorded it in /history (as ComfyUI's own websocket example)
    async with session.get(f"{url}/history/{prompt_id}") as resp:
        entry = (await resp.json())[prompt_id]
    (image,) = [i for out in entry["outputs"].values() for i in out.get("images", [])]
    async with session.get(f"{url}/view", params=image) as resp:
        return await resp.read()


async def runsync(session: aiohttp.ClientSession, api: str, prompt: dict[str, Any]) -> bytes:
    async with session.post(f"{api}/runsync", json={"input": {"workflow": prompt}}) as resp:
        answer = await resp.json()
    if answer.get("status") != "COMPLETED":
        raise RuntimeError(f"job failed: {answer}")
    return base64.b64decode(answer["output"]["images"][0]["data"])


def worker_env(ws: Path, args: argparse.Namespace, comfy_port: int, delay: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "RUNPOD_", "BUCKET_"))}
    env.update(
        WORKSPACE_ROOT=str(ws),
        COMFYUI_ROOT=str(args.comfyui_root or FAKE),
        COMFYUI_PYTHON=args.comfyui_python or sys.executable,
        COMFYUI_INTERNAL_PORT=str(comfy_port),
        FAKE_COMFYUI_START_DELAY=str(delay),
        COMFYUI_PASS_ENV="FAKE_COMFYUI_START_DELAY",  # ComfyUI sees only what is passed
        LOG_LEVEL="INFO",  # the default: our per-job line and the SDK's are part of the cost
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def launch(
    ws: Path, args: argparse.Namespace, delay: float, log: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    comfy, api = free_port(), free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*WORKER, "--rp_api_port", str(api)],
            env=worker_env(ws, args, comfy, delay),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{comfy}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def until_answers(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                if resp.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def overhead(args: argparse.Namespace, tmp: Path) -> None:
    proc, api, comfy = launch(tmp / "ws-jobs", args, 0.0, tmp / "jobs.log")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            await until_answers(session, f"{api}/openapi.json", proc)
            color = 0
            for _ in range(5):  # warm up both paths (imports, pools, ComfyUI's first prompt)
                color += 1
                await direct(session, comfy, graph(color, "bench/direct", args.size))
                color += 1
                await runsync(session, api, graph(color, "bench/job", args.size))
            a: list[float] = []
            b: list[float] = []
            for _ in range(args.jobs):
                color += 1
                started = time.perf_counter()
                first = await direct(session, comfy, graph(color, "bench/direct", args.size))
                a.append(time.perf_counter() - started)
                color += 1
                started = time.perf_counter()
                second = await runsync(session, api, graph(color, "bench/job", args.size))
                b.append(time.perf_counter() - started)
                assert first[:4] == second[:4] == b"\x89PNG"
    finally:
        stop(proc)
    ma, mb = statistics.median(a), statistics.median(b)
    which = args.comfyui_root or "fake"
    print(f"job, {args.size}x{args.size} PNG, {args.jobs} each, alternating (ComfyUI: {which})")
    print(f"  straight to ComfyUI (peer): p50 {ma * 1000:7.1f} ms  p90 {pct(a, 0.9) * 1000:7.1f} ms")
    print(f"  POST /runsync (ours):       p50 {mb * 1000:7.1f} ms  p90 {pct(b, 0.9) * 1000:7.1f} ms")
    print(f"  added at p50: {(mb - ma) * 1000:.1f} ms   ratio {mb / ma:.2f}   target: <= 50 ms added")


async def cold_ours(args: argparse.Namespace, ws: Path, log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc, api, _ = launch(ws, args, args.comfy_delay, log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await until_answers(session, f"{api}/openapi.json", proc)
            await runsync(session, api, graph(1, "bench/cold", args.size))
            took = time.perf_counter() - started
    finally:
        stop(proc)
    text = log.read_text(errors="replace")
    marks = re.findall(r"(ComfyUI ready|spawned at|first job accepted) ([\d.]+) s", text)
    return took, ", ".join(f"{what} {value} s" for what, value in marks)


async def cold_direct(args: argparse.Namespace, ws: Path) -> float:
    """The peer: the same ComfyUI launched directly, its first prompt as soon as it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for sub in ("output", "uploads", "user"):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    argv = [args.comfyui_python or sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port)]
    argv += ["--output-directory", str(ws / "output"), "--input-directory", str(ws / "uploads")]
    argv += ["--user-directory", str(ws / "user"), "--cpu"]
    env = worker_env(ws, args, port, args.comfy_delay)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=args.comfyui_root or FAKE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await until_answers(session, f"{url}/system_stats", proc)
            await direct(session, url, graph(1, "bench/cold", args.size))
            return time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def cold_start(args: argparse.Namespace, tmp: Path) -> None:
    ours: list[float] = []
    peer: list[float] = []
    marks: list[str] = []
    await cold_ours(args, tmp / "ws-warm", tmp / "warm.log")  # untimed: bytecode caches, first volume
    for i in range(args.rounds):
        took, mark = await cold_ours(args, tmp / f"ws-cold-{i}", tmp / f"cold-{i}.log")
        ours.append(took)
        marks.append(mark)
        peer.append(await cold_direct(args, tmp / f"ws-direct-{i}"))
    mo, mp = statistics.median(ours), statistics.median(peer)
    boot = f"fake, {args.comfy_delay:g} s boot" if not args.comfyui_root else "real ComfyUI"
    print(f"cold start to the first job's answer ({boot}), {args.rounds} rounds alternating")
    print(f"  worker launched -> /runsync answered (ours):   median {mo:6.2f} s  runs {_s(ours)}")
    print(f"  ComfyUI launched -> first prompt done (peer): median {mp:6.2f} s  runs {_s(peer)}")
    print(f"  added: {mo - mp:.2f} s   ratio {mo / mp:.3f}")
    for mark in marks:
        print(f"  worker log: {mark}")


def payload(args: argparse.Namespace, tmp: Path) -> None:
    from fastapi.encoders import jsonable_encoder

    data = os.urandom(int(args.payload_mb * 1024 * 1024))  # incompressible, like a photo's PNG
    ours: list[float] = []
    peer: list[float] = []
    for _ in range(20):
        started = time.perf_counter()
        entry = {"filename": "x.png", "type": "base64", "data": base64.b64encode(data).decode("ascii")}
        json.dumps(jsonable_encoder({"id": "j", "status": "COMPLETED", "output": {"images": [entry]}}))
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        (tmp / "payload.bin").write_bytes(data)
        peer.append(time.perf_counter() - started)
    mo, mp = statistics.median(ours), statistics.median(peer)
    print(f"payload of {args.payload_mb:g} MB: base64 + the SDK's JSON answer p50 {mo * 1000:.1f} ms")
    print(f"  writing the same bytes to a file (peer): p50 {mp * 1000:.1f} ms   ratio {mo / mp:.1f}")


def _s(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="output image side in pixels")
    parser.add_argument("--comfy-delay", type=float, default=12.0)
    parser.add_argument("--comfyui-root", type=Path, help="a real ComfyUI (default: the fake)")
    parser.add_argument("--comfyui-python", help="its interpreter")
    parser.add_argument("--payload-mb", type=float, default=2.0)
    parser.add_argument("--skip-cold", action="store_true", help="no cold start rounds")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="cd-bench-serverless-"))
    try:
        asyncio.run(overhead(args, tmp))
        payload(args, tmp)
        if not args.skip_cold:
            asyncio.run(cold_start(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
