from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from comfyui_docker.downloads.fetch import Fetcher, FetchOptions
from comfyui_docker.downloads.http import RetryPolicy
from fakes.model_host import ModelHost

KIB = 1024
MIB = 1024 * 1024


def blob(n: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating test bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 32
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def host() -> Iterator[ModelHost]:
    with ModelHost("127.0.0.1") as h:
        yield h


@pytest.fixture
def other_host() -> Iterator[ModelHost]:
    """A second host: 'localhost' is another host name than '127.0.0.1' for tokens."""
    with ModelHost("localhost") as h:
        yield h


def _server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def tls_host(tls_cert: tuple[Path, Path]) -> Iterator[ModelHost]:
    """The model host over https, as 127.0.0.1 (tokens are only sent over https)."""
    with ModelHost("127.0.0.1", ssl_context=_server_tls(tls_cert)) as h:
        yield h


@pytest.fixture
def tls_other_host(tls_cert: tuple[Path, Path]) -> Iterator[ModelHost]:
    """A second https host name (the certificate names 127.0.0.1 and localhost)."""
    with ModelHost("localhost", ssl_context=_server_tls(tls_cert)) as h:
        yield h


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def options(**kw: object) -> FetchOptions:
    base: dict[str, object] = {
        "connections": 1,
        "piece_size": 256 * KIB,
        # a new download is split at once (tests that want the one-stream decision say so)
        "split_after": 0.0,
        "split_below": float("inf"),
        "split_ahead": 256 * KIB,
        "tap_min": 64 * KIB,  # bodies go through BodyTap (tests of the aiohttp path say so)
        "min_multi_size": 512 * KIB,
        "flush_every": 128 * KIB,
        "retry": RetryPolicy(attempts=4, base=0.01, cap=0.05),
        "timeout": aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=1),
        "space_margin": 0,
    }
    base.update(kw)
    return FetchOptions(**base)  # type: ignore[arg-type]


def make_fetcher(
    session: aiohttp.ClientSession, tokens: dict[str, str] | None = None, **kw: object
) -> Fetcher:
    sleeps = Sleeps()
    free = kw.pop("free_space", None)
    guard = kw.pop("guard", None)
    fetcher = Fetcher(
        session,
        tokens=lambda h: (tokens or {}).get(h),
        options=options(**kw),
        sleep=sleeps,
        guard=guard,  # type: ignore[arg-type]
        **({"free_space": free} if free else {}),  # type: ignore[arg-type]
    )
    fetcher.sleeps = sleeps  # type: ignore[attr-defined]
    return fetcher


def listing(folder: os.PathLike[str]) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as `make test` installs it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make test installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_host(tls_cert: tuple[Path, Path], tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS file server on 127.0.0.1 (aiohttp, Range support): (base URL, its folder)."""
    from aiohttp import web

    cert, key = tls_cert
    folder = tmp_path / "served"
    folder.mkdir()

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(folder / request.match_info["name"])

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}", folder
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_session(tls_cert: tuple[Path, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    client_ctx = ssl.create_default_context(cafile=str(tls_cert[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as s:
        yield s
