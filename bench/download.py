"""Benchmark: our download engine against curl and aria2c, from nginx on 127.0.0.1.

Case 1 (full speed): a multi-GB file served by nginx (sendfile, Range support). Each client
downloads it to disk in turn, alternating (A B C A B C ...):
  - ours: the engine of comfyui_docker.downloads (sha256 computed inline, fsync, rename),
    with 1 connection and with N allowed (the default: one stream, split over N connections
    only if it is slower than 200 MB/s after 0.2 s, which it is not on loopback);
  - curl (single stream) and then `sha256sum` of the result (so the hash is paid for too);
  - aria2c -x1 (if installed).
Case 2 (CDN-like): nginx caps every connection at 40 MB/s (`limit_rate 40m`); ours with N
connections (it splits after 0.2 s) against `aria2c -x N -s N` and single-stream curl.

Prints MB/s and CPU seconds (user+sys of the client process) per client, medians over the
rounds, and the ratios. Targets: ours >= 0.95 x curl MB/s with the hash, CPU no higher than
curl + sha256sum; capped: ours >= 0.9 x aria2c.

usage: python bench/download.py [--size-mb 2048] [--capped-mb 512] [--rounds 3] [--connections 8]
Needs nginx (falls back to a Python server) and curl; aria2c optional. Cleans up after itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"


# ---- our client, run as a child process so its CPU time is measured alone ----------------
async def _fetch(url: str, dest: Path, connections: int) -> dict[str, object]:
    import aiohttp

    from comfyui_docker.downloads.fetch import Fetcher, FetchOptions

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    async with aiohttp.ClientSession() as session:
        fetcher = Fetcher(session, options=FetchOptions(connections=connections))
        result = await fetcher.fetch(url, dest)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "sha256": result.sha256,
        "size": result.size,
        "wall": wall,
        "cpu": cpu,
        "direct": result.direct_bytes,
        "connections": result.connections,
    }


def child_main(url: str, dest: str, connections: int) -> None:
    sys.path.insert(0, str(SRC))
    out = asyncio.run(_fetch(url, Path(dest), connections))
    print(json.dumps(out))


# ---- helpers ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size: int) -> str:
    block = os.urandom(16 * MIB)
    h = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, child CPU seconds, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def start_nginx(root: Path, www: Path, port: int) -> subprocess.Popen[bytes]:
    for sub in ("logs", "tmp"):
        (root / sub).mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 2;
error_log {root}/logs/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location /capped/ {{ alias {www}/; limit_rate 40m; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(["nginx", "-p", str(root), "-c", str(conf), "-g", "daemon off;"])
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nginx did not start; see {root}/logs/error.log")


def start_python_server(www: Path, port: int) -> subprocess.Popen[bytes]:
    # Python's http.server has no Range support: case 2 is skipped with it
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(www)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Runner:
    def __init__(self, work: Path, expected: dict[str, str]) -> None:
        self.work = work
        self.expected = expected
        self.env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.details: list[str] = []

    def dest(self) -> Path:
        d = self.work / "dl"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        return d / "out.bin"

    def check(self, path: Path, name: str, digest: str) -> None:
        if digest != self.expected[name]:
            raise RuntimeError(f"wrong sha256 for {name}: {digest}")
        path.unlink(missing_ok=True)

    def ours(self, url: str, name: str, connections: int) -> tuple[float, float]:
        dest = self.dest()
        cmd = [sys.executable, str(HERE), "--child", url, str(dest), str(connections)]
        _, _, out = run_timed(cmd, self.env)
        info = json.loads(out)
        self.check(dest, name, info["sha256"])
        self.details.append(
            f"ours, {name}, {connections} allowed: {info['connections']} used, "
            f"{100 * info['direct'] / max(info['size'], 1):.0f}% written with O_DIRECT"
        )
        # the fetch itself, measured inside the child: the runtime imports once, not per download
        return float(info["wall"]), float(info["cpu"])

    def curl(self, url: str, name: str, with_hash: bool = True, durable: bool = False) -> tuple[float, float]:
        dest = self.dest()
        wall, cpu, _ = run_timed(["curl", "-sS", "--fail", "-o", str(dest), url])
        if durable:
            # what ours guarantees before it reports done: the bytes are on the disk (fdatasync)
            w2, c2, _ = run_timed(["sync", "-d", str(dest)])
            wall, cpu = wall + w2, cpu + c2
        if with_hash:
            w2, c2, out = run_timed(["sha256sum", str(dest)])
            wall, cpu = wall + w2, cpu + c2
            self.check(dest, name, out.split()[0])
        dest.unlink(missing_ok=True)
        return wall, cpu

    def aria2(self, url: str, name: str, n: int) -> tuple[float, float]:
        dest = self.dest()
        cmd = [
            "aria2c", "-q", f"-x{n}", f"-s{n}", "-k1M", "--allow-overwrite=true",
            "-d", str(dest.parent), "-o", dest.name, url,
        ]  # fmt: skip
        wall, cpu, _ = run_timed(cmd)
        dest.unlink(missing_ok=True)
        return wall, cpu


def report(title: str, size: int, results: dict[str, list[tuple[float, float]]], *bases: str) -> None:
    print(f"\n{title}")
    head = "".join(f" {'vs ' + b[:16]:>20}" for b in bases)
    print(f"{'client':<38} {'MB/s':>7} {'CPU s':>7}{head}")
    speeds = {b: size / 1e6 / statistics.median(w for w, _ in results[b]) for b in bases}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        speed = size / 1e6 / wall
        ratios = "".join(f" {speed / speeds[b]:>19.2f}x" for b in bases)
        print(f"{name:<38} {speed:>7.0f} {cpu:>7.2f}{ratios}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=2048)
    ap.add_argument("--capped-mb", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--child", nargs=3, metavar=("URL", "DEST", "CONNECTIONS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1], int(args.child[2]))
        return 0
    if not shutil.which("curl"):
        print("curl is required", file=sys.stderr)
        return 2
    size, capped = args.size_mb * MIB, args.capped_mb * MIB
    tmp_root = Path(tempfile.gettempdir())
    need = size + capped + size + 512 * MIB
    free = shutil.disk_usage(tmp_root).free
    if free < need:
        print(f"not enough space in {tmp_root}: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free")
        return 2
    work = Path(tempfile.mkdtemp(prefix="cd-bench-download-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    server: subprocess.Popen[bytes] | None = None
    use_nginx = shutil.which("nginx") is not None
    try:
        www = work / "www"
        www.mkdir()
        expected = {
            "big.bin": make_file(www / "big.bin", size),
            "capped.bin": make_file(www / "capped.bin", capped),
        }
        port = free_port()
        server = start_nginx(work, www, port) if use_nginx else start_python_server(www, port)
        time.sleep(0.3)
        base = f"http://127.0.0.1:{port}"
        run = Runner(work, expected)
        has_aria = shutil.which("aria2c") is not None
        n = args.connections
        print(
            f"server: {'nginx' if use_nginx else 'python http.server'} on 127.0.0.1; "
            f"file {args.size_mb} MiB; "
            f"{args.rounds} rounds, alternating; to disk in {work}"
        )
        print(
            "timing: curl, sha256sum and aria2c from process start to exit (wall + child CPU); ours "
            "inside the child, from before the HTTP session opens until the verified file is fsynced and "
            "renamed (the interpreter start and imports, ~0.3 s, are not counted). Every client writes the "
            "same file to the same disk; ours (fdatasync as it goes, fsync at the end) and "
            "'curl + sync' make it durable."
        )

        full: dict[str, list[tuple[float, float]]] = {"curl + sha256sum": [], "curl (no hash)": []}
        full["curl + sync (durable, no hash)"] = []
        full["ours, 1 connection (sha256 inline)"] = []
        full[f"ours, {n} connections (sha256 inline)"] = []
        if has_aria:
            full["aria2c -x1 (no hash)"] = []
        url = f"{base}/big.bin"
        for _ in range(args.rounds):
            full["curl + sha256sum"].append(run.curl(url, "big.bin"))
            full["ours, 1 connection (sha256 inline)"].append(run.ours(url, "big.bin", 1))
            full["curl (no hash)"].append(run.curl(url, "big.bin", with_hash=False))
            full["curl + sync (durable, no hash)"].append(run.curl(url, "big.bin", False, durable=True))
            full[f"ours, {n} connections (sha256 inline)"].append(run.ours(url, "big.bin", n))
            if has_aria:
                full["aria2c -x1 (no hash)"].append(run.aria2(url, "big.bin", 1))
        report(
            f"case 1: {args.size_mb} MiB at full speed",
            size,
            full,
            "curl (no hash)",
            "curl + sync (durable, no hash)",
            "curl + sha256sum",
        )

        if use_nginx:
            cap: dict[str, list[tuple[float, float]]] = {}
            curl_name, ours_name, aria_name = (
                "curl (1 stream)",
                f"ours, {n} connections",
                f"aria2c -x{n} -s{n}",
            )
            cap[aria_name] = []
            cap[ours_name] = []
            cap[curl_name] = []
            url = f"{base}/capped/capped.bin"
            for r in range(max(1, args.rounds - 1)):
                if has_aria:
                    cap[aria_name].append(run.aria2(url, "capped.bin", n))
                cap[ours_name].append(run.ours(url, "capped.bin", n))
                if r == 0:
                    cap[curl_name].append(run.curl(url, "capped.bin", with_hash=False))
            if not has_aria:
                del cap[aria_name]
            report(
                f"case 2: {args.capped_mb} MiB, every connection capped at 40 MB/s",
                capped,
                cap,
                aria_name if has_aria else curl_name,
            )
        else:
            print("\ncase 2 skipped: nginx is not installed (its limit_rate caps each connection)")
        print("\nours, run by run:")
        for line in dict.fromkeys(run.details):
            print(f"  {line}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM if use_nginx else signal.SIGKILL)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
