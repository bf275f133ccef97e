"""Security figures of issue 12, ours next to the same code before the fixes, in one run.

    flock /tmp/cd-bench.lock .venv/bin/python bench/security.py [--rounds 2] [--spray-seconds 12]
        [--peer-ref REF | --no-peer]   (default: 3453d49, the commit before the fixes)

Every server is `comfyui-docker start` (no ComfyUI installed, ACCESS_PASSWORD set) in its own
process, from this tree ("ours") or from `git archive <peer-ref>` ("before": the code without the
fixes, the peer). Behind nginx where it says so (ENABLE_NGINX=true: the product's own config on
127.0.0.1). Clients are raw HTTP/1.1 over asyncio sockets in this process; a "spray" binds each
connection to its own loopback source address (127.1.x.y), so nginx and the dashboard see 1,000
different clients. Rounds alternate ours / before; timings are medians of the rounds.

1. A 1,000-address spray through nginx: a guess list of 5,000 wrong passwords with the right one
   at position 2,000, one guess per connection, round-robin over the addresses, 32 at a time, as
   fast as they go, for --spray-seconds (round the list again when it runs out). Does the sprayer
   get in, and how many guesses were checked? Meanwhile the owner logs in with the right password
   from a new browser (own address) and from a browser that has logged in before: how fast
   (retrying after Retry-After), or not before the spray ends.
2. The same behind one proxy address (RunPod's proxy, Docker's NAT): sprayer and owner share
   127.0.0.2.
3. The dashboard's memory while an authenticated 40 MB JSON body (POST /api/models/missing) is
   refused, with and without Content-Length: peak RSS above the idle process, and the answer.
4. Time to refuse a 300 MB multipart POST /login, direct and through nginx: time to the status
   line, and how much of the body had been sent by then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery-staple-42"
TOKEN = "bench-api-token-0123456789abcdef"
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the servers ------------------------------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int  # the public dashboard port (nginx's, or the dashboard's own)
    comfyui_port: int

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)


def peer_tree(ref: str, into: Path) -> Path:
    """The source tree at `ref` (git archive: the repository as committed), with our built assets."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    static = REPO / "src" / "comfyui_docker" / "web" / "static"
    for name in ("app.css", "vendor"):
        src, dst = static / name, into / "src" / "comfyui_docker" / "web" / "static" / name
        if src.is_dir() and not dst.exists():
            shutil.copytree(src, dst)
        elif src.is_file() and not dst.exists():
            shutil.copy2(src, dst)
    return into / "src"


@contextlib.contextmanager
def running(src: Path, *, nginx: bool, work: Path) -> Iterator[Server]:
    port, comfy = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "WORKSPACE_ROOT": str(work / "ws"),
        "COMFYUI_ROOT": str(work / "no-comfyui"),
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(port),
        "COMFYUI_PORT": str(comfy),
        "DASHBOARD_INTERNAL_PORT": str(free_port()),
        "COMFYUI_INTERNAL_PORT": str(free_port()),
        "ENABLE_NGINX": "true" if nginx else "false",
        "ACCESS_PASSWORD": PASSWORD,
        "API_TOKEN": TOKEN,
        "LOG_LEVEL": "WARNING",
    }
    log = (work / "start.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfyui_docker", "start"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"start exited {proc.returncode}: see {work / 'start.log'}")
            try:
                status = asyncio.run(request("127.0.0.1", port, "GET", "/health"))[0]
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not answer in 60 s")
            time.sleep(0.1)
        yield Server(proc, port, comfy)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


# ---- a minimal HTTP/1.1 client (one request per connection) ----------------------------------
async def request(
    source: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout
    )
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    got: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            if k.lower() == "set-cookie":
                got.setdefault("set-cookie", "")
                got["set-cookie"] += v.strip() + "\n"
            else:
                got[k.strip().lower()] = v.strip()
    return status, got


def form(password: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode({"password": password, "next": "/"}).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://127.0.0.1"}


async def login(port: int, source: str, password: str, cookie: str = "") -> tuple[int, dict[str, str]]:
    headers = {**FORM, "Origin": f"http://127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    return await request(source, port, "POST", "/login", form(password), headers)


def device_cookie(headers: dict[str, str]) -> str:
    for line in headers.get("set-cookie", "").splitlines():
        if line.startswith("cd_device="):
            return line.split(";", 1)[0]
    return ""


# ---- 1 and 2: the spray ----------------------------------------------------------------------
@dataclass
class Spray:
    checked: int = 0
    refused: int = 0
    other: int = 0
    got_in_after: float | None = None
    owner: dict[str, float | None] = field(default_factory=dict)


async def owner_tries(port: int, source: str, cookie: str, until: float) -> float | None:
    """Seconds until the right password gets in (retrying after Retry-After), None if not by `until`."""
    started = time.monotonic()
    while time.monotonic() < until:
        status, headers = await login(port, source, PASSWORD, cookie)
        if status == 303:
            return time.monotonic() - started
        wait = float(headers.get("retry-after", "1") or 1)
        await asyncio.sleep(min(wait, max(0.0, until - time.monotonic())))
    return None


async def spray(port: int, sources: list[str], seconds: float, owners: dict[str, tuple[str, str]]) -> Spray:
    """Guesses as fast as 32 connections go, for `seconds`, going round the list again when it
    runs out (a sustained spray), until the right password gets in."""
    out = Spray()
    guesses = [f"guess-{i:05d}" for i in range(5000)]
    guesses.insert(2000, PASSWORD)
    counter = iter(range(10**9))
    started = time.monotonic()
    until = started + seconds

    async def worker() -> None:
        while time.monotonic() < until and out.got_in_after is None:
            i = next(counter)
            try:
                status, _ = await login(port, sources[i % len(sources)], guesses[i % len(guesses)])
            except (TimeoutError, OSError):
                out.other += 1
                continue
            if status == 303:
                out.got_in_after = time.monotonic() - started
            elif status == 401:
                out.checked += 1
            elif status == 429:
                out.refused += 1
            else:
                out.other += 1

    async def owner(name: str, source: str, cookie: str) -> None:
        await asyncio.sleep(seconds / 4)  # the spray is in full swing
        out.owner[name] = await owner_tries(port, source, cookie, until)

    await asyncio.gather(*(worker() for _ in range(32)), *(owner(n, s, c) for n, (s, c) in owners.items()))
    return out


def spray_round(src: Path, work: Path, seconds: float, *, one_address: bool) -> Spray:
    with running(src, nginx=True, work=work) as server:

        async def go() -> Spray:
            owner_source = "127.0.0.2" if one_address else "127.0.0.250"
            status, headers = await login(server.port, owner_source, PASSWORD)  # an earlier visit
            assert status == 303, status
            owners = {
                "known browser": (owner_source, device_cookie(headers)),
                "new browser": ("127.0.0.2" if one_address else "127.0.0.251", ""),
            }
            sources = (
                ["127.0.0.2"] if one_address else [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(1000)]
            )
            return await spray(server.port, sources, seconds, owners)

        return asyncio.run(go())


# ---- 3: memory with a 40 MB JSON body ---------------------------------------------------------
class PeakRss:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def big_workflow(size: int) -> bytes:
    node = b'{"id": 1, "type": "Note", "mode": 0, "widgets_values": ["a note"], "properties": {}},'
    count = (size - 64) // len(node)
    return b'{"workflow": {"nodes": [' + node * count + b'{"id": 0}]}}'


def post_streaming(port: int, head: list[str], chunks: Iterator[bytes]) -> tuple[int, float, int]:
    """Send a request (`head` lines, then `chunks`) from one thread while this one waits for the
    status line: (status, seconds to it, body bytes sent by then). A server that answers early
    and closes must not make its answer, already on the way, get lost behind a write error."""
    sock = socket.create_connection(("127.0.0.1", port))
    sent = [0]

    def pump() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for chunk in chunks:
                sock.sendall(chunk)
                sent[0] += len(chunk)

    started = time.monotonic()
    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    data = b""
    sock.settimeout(300)
    with contextlib.suppress(OSError):
        while b"\r\n" not in data:
            got = sock.recv(4096)
            if not got:
                break
            data += got
    elapsed, at = time.monotonic() - started, sent[0]
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    sender.join(10)
    status = int(data.split(b"\r\n", 1)[0].split()[1]) if data.startswith(b"HTTP/") else 0
    return status, elapsed, at


def send_body(port: int, body: bytes, *, chunked: bool) -> tuple[int, float]:
    head = [
        "POST /api/models/missing HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {TOKEN}",
        "Content-Type: application/json",
        "Connection: close",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
    ]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), MIB):
            piece = body[i : i + MIB]
            yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
        if chunked:
            yield b"0\r\n\r\n"

    status, elapsed, _ = post_streaming(port, head, chunks())
    return status, elapsed


def memory_round(src: Path, work: Path, *, chunked: bool) -> dict[str, float]:
    body = big_workflow(40 * MIB)
    with running(src, nginx=False, work=work) as server:
        time.sleep(0.5)
        idle = server.rss()
        with PeakRss(server.proc.pid) as peak:
            status, elapsed = send_body(server.port, body, chunked=chunked)
            time.sleep(0.2)
        return {"status": status, "seconds": elapsed, "peak_mb": (peak.peak - idle) / MIB}


# ---- 4: 300 MB multipart login ------------------------------------------------------------------
def multipart_login(port: int, total: int) -> tuple[int, float, float]:
    """(status, seconds to the status line, MB of the body sent by then)."""
    head = [
        "POST /login HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Origin: http://127.0.0.1:{port}",
        "Content-Type: multipart/form-data; boundary=bench",
        f"Content-Length: {total}",
        "Connection: close",
    ]
    preamble = b'--bench\r\nContent-Disposition: form-data; name="password"\r\n\r\nx\r\n'
    preamble += b'--bench\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'

    def chunks() -> Iterator[bytes]:
        yield preamble
        left, block = total - len(preamble), b"\0" * MIB
        while left > 0:
            yield block[:left]
            left -= min(left, MIB)

    status, elapsed, sent = post_streaming(port, head, chunks())
    return status, elapsed, sent / MIB


def multipart_round(src: Path, work: Path, *, nginx: bool) -> dict[str, float]:
    with running(src, nginx=nginx, work=work) as server:
        status, seconds, mb = multipart_login(server.port, 300 * MIB)
        return {"status": status, "seconds": seconds, "sent_mb": mb}


# ---- the run ----------------------------------------------------------------------------------
def med(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def fmt_s(value: float | None, bound: float) -> str:
    return f"{value:.2f} s" if value is not None else f"not within {bound:.0f} s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2g}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--spray-seconds", type=float, default=12.0)
    ap.add_argument("--peer-ref", default="3453d49", help="git ref of the code before the fixes (issue 12)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--only", choices=("spray", "proxy", "memory", "multipart"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        trees = {"ours": REPO / "src"}
        if not args.no_peer:
            (Path(tmp) / "peer").mkdir()
            trees["before"] = peer_tree(args.peer_ref, Path(tmp) / "peer")
        names = list(trees)
        if len(names) > 1:
            ref = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", args.peer_ref],
                capture_output=True,
                text=True,
            ).stdout.strip()
            print(f"ours: {REPO} (working tree); before: git {args.peer_ref} ({ref})")
        else:
            print(f"ours: {REPO}")
        seq = 0

        def work() -> Path:
            nonlocal seq
            seq += 1
            path = Path(tmp) / f"w{seq}"
            path.mkdir()
            return path

        def rounds(fn: Any, **kw: Any) -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {n: [] for n in names}
            for _ in range(args.rounds):
                for n in names:  # A B A B
                    out[n].append(fn(trees[n], work(), **kw))
            return out

        for title, one in (("1,000-address spray through nginx", False), ("one proxy address", True)):
            if args.only not in (None, "spray" if not one else "proxy"):
                continue
            res = rounds(spray_round, seconds=args.spray_seconds, one_address=one)
            print(f"\n== {title}: {args.spray_seconds:.0f} s, right password at guess 2,000 of 5,001")
            print(f"{'':30}" + "".join(f"{n:>32}" for n in names))
            rows = [
                ("sprayer got in after", lambda r: r.got_in_after, "s"),
                ("guesses checked", lambda r: r.checked, "n"),
                ("guesses refused (429)", lambda r: r.refused, "n"),
                ("owner, known browser", lambda r: r.owner.get("known browser"), "s"),
                ("owner, new browser", lambda r: r.owner.get("new browser"), "s"),
            ]
            for label, get, kind in rows:
                cells = []
                for n in names:
                    values = [get(r) for r in res[n]]
                    value = med(values)
                    if kind == "s":
                        got = sum(v is not None for v in values)
                        tail = f" ({got} of {len(values)} rounds)" if 0 < got < len(values) else ""
                        cells.append(fmt_s(value, args.spray_seconds) + tail)
                    else:
                        cells.append(f"{value:.0f}" if value is not None else "-")
                print(f"{label:30}" + "".join(f"{c:>32}" for c in cells))
            if len(names) > 1:
                checked = [med([r.checked for r in res[n]]) for n in names]
                print(f"{'guesses checked, ours/before':30}{ratio(checked[0], checked[1]):>32}")

        if args.only in (None, "memory"):
            for chunked in (False, True):
                res = rounds(memory_round, chunked=chunked)
                label = "no Content-Length (chunked)" if chunked else "with Content-Length"
                print(f"\n== 40 MB JSON body, authenticated POST /api/models/missing, {label}")
                for n in names:
                    peak = med([r["peak_mb"] for r in res[n]])
                    secs = med([r["seconds"] for r in res[n]])
                    codes = sorted({int(r["status"]) for r in res[n]})
                    print(f"{n:8} answer {codes}  in {secs:.3f} s  dashboard RSS +{peak:.1f} MB above idle")
                if len(names) > 1:
                    a, b = (med([r["peak_mb"] for r in res[n]]) for n in names)
                    print(f"peak RSS growth ours/before: {ratio(max(a or 0, 0.1), max(b or 0, 0.1))}")

        if args.only in (None, "multipart"):
            for nginx in (False, True):
                res = rounds(multipart_round, nginx=nginx)
                print(f"\n== 300 MB multipart POST /login, {'through nginx' if nginx else 'direct'}")
                for n in names:
                    secs = med([r["seconds"] for r in res[n]])
                    sent = med([r["sent_mb"] for r in res[n]])
                    codes = sorted({int(r["status"]) for r in res[n]})
                    print(f"{n:8} answer {codes}  after {secs:.3f} s, {sent:.0f} MB of the body sent by then")
                if len(names) > 1:
                    a, b = (med([r["seconds"] for r in res[n]]) for n in names)
                    print(f"time to refuse ours/before: {ratio(a, b)}")


if __name__ == "__main__":
    main()
