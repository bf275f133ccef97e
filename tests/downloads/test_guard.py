"""Workflow-declared URLs: allowed hosts only, and never an internal address, after DNS and on
every redirect (real downloads from local servers; DNS answers injected where a name must point
at a given loopback address)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from comfyui_docker.downloads.guard import GuardedResolver, UrlGuard
from comfyui_docker.downloads.hosts import parse_hosts, public_address
from comfyui_docker.errors import UrlRefused
from fakes.model_host import ModelHost

from .conftest import blob, listing, make_fetcher, sha


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1",
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
        "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "2002:7f00:1::1",
        "64:ff9b::a00:1", "2001:db8::1",
    ],
)  # fmt: skip
def test_internal_addresses_are_refused(address: str) -> None:
    assert not public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "104.16.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert public_address(ipaddress.ip_address(address))


def test_host_allow_list() -> None:
    guard = UrlGuard()  # huggingface.co, hf.co, civitai.com
    ok = [
        "https://huggingface.co/org/m/resolve/main/a.safetensors",
        "https://cdn-lfs.huggingface.co/x",
        "https://cas-bridge.xethub.hf.co/x",
        "https://civitai.com/api/download/models/1",
        "https://HuggingFace.co./x",
    ]
    for url in ok:
        assert guard.refusal(url, declared=True) is None, url
    refused = {
        "http://127.0.0.1:8188/system_stats": "not an allowed model host",
        "https://evilhuggingface.co/x": "not an allowed model host",
        "https://huggingface.co.evil.example/x": "not an allowed model host",
        "file:///etc/passwd": "only http and https",
        "ftp://huggingface.co/x": "only http and https",
        "https:///nohost": "names no host",
    }
    for url, why in refused.items():
        assert why in (guard.refusal(url, declared=True) or ""), url
    # a redirect hop's host need not be listed, but its address must not be internal
    assert guard.refusal("https://cdn.example/x", declared=False) is None
    assert "internal address" in (guard.refusal("http://[::ffff:127.0.0.1]:8188/", declared=False) or "")
    assert "internal address" in (guard.refusal("http://169.254.169.254/latest", declared=False) or "")
    # an address the user listed is allowed as listed (a mirror on the LAN)
    lan = UrlGuard(hosts=("huggingface.co", "192.168.1.5"))
    assert lan.refusal("http://192.168.1.5:8000/m.safetensors", declared=True) is None
    assert lan.refusal("http://192.168.1.6:8000/m.safetensors", declared=True) is not None


def test_parse_hosts() -> None:
    assert parse_hosts("HuggingFace.co, models.example.org ;[::1] 10.0.0.5") == (
        ("huggingface.co", "models.example.org", "::1", "10.0.0.5"),
        [],
    )
    assert parse_hosts("https://x.example/, a b")[1] == ["https://x.example/"]


class FakeDNS(AbstractResolver):
    """Answers from a table, as a DNS server that an attacker controls would."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        ip = self.table[host]
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=ip, port=port, family=fam, proto=0, flags=socket.AI_NUMERICHOST)
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def dns_session() -> AsyncIterator[tuple[aiohttp.ClientSession, FakeDNS, list[UrlGuard]]]:
    """A session that resolves names through the guard over a fake DNS; the guard can be set."""
    dns = FakeDNS({})
    current: list[UrlGuard] = [UrlGuard()]
    resolver = GuardedResolver(lambda: current[0], inner=dns)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as session:
        yield session, dns, current


async def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(
    host: ModelHost, dns_session: tuple[aiohttp.ClientSession, FakeDNS, list[UrlGuard]], tmp_path: Path
) -> None:
    session, dns, current = dns_session
    host.add("/system_stats", b'{"system": "ComfyUI internal"}')
    for answer in ("127.0.0.1", "::ffff:127.0.0.1"):
        dns.table["models.example"] = answer
        current[0] = guard = UrlGuard(hosts=("models.example",))
        url = f"http://models.example:{host.port}/system_stats"
        with pytest.raises(UrlRefused, match="resolves to the internal address"):
            await make_fetcher(session, guard=guard).fetch(url, tmp_path / "m.safetensors")
    assert host.requests == [] and listing(tmp_path) == []


async def test_every_redirect_is_checked(
    host: ModelHost, dns_session: tuple[aiohttp.ClientSession, FakeDNS, list[UrlGuard]], tmp_path: Path
) -> None:
    """An allowed host (here 127.0.0.1, listed by address) redirects: to an address literal, and to
    a name whose DNS answer is internal. Neither is fetched."""
    session, dns, current = dns_session
    current[0] = guard = UrlGuard(hosts=("127.0.0.1",))
    inner = ModelHost("127.0.0.2").start()
    try:
        inner.add("/secret", b"internal")
        dns.table["cdn.example"] = "127.0.0.2"
        to_literal = host.add("/a", b"", f"redirect:{inner.url('/secret')}")
        to_name = host.add("/b", b"", f"redirect:http://cdn.example:{inner.port}/secret")
        for url in (to_literal, to_name):
            with pytest.raises(UrlRefused):
                await make_fetcher(session, guard=guard).fetch(url, tmp_path / "m.bin")
        assert inner.requests == [] and listing(tmp_path) == []
        # and an allowed, public-looking chain still downloads (the test's DNS maps the CDN to the
        # listed address)
        data = blob(4096)
        dns.table["good-cdn.example"] = "127.0.0.1"
        target = host.add("/data", data)
        ok = host.add("/c", b"", f"redirect:http://good-cdn.example:{host.port}/data")
        assert target
        await make_fetcher(session, guard=guard).fetch(ok, tmp_path / "ok.bin", sha256=sha(data))
        assert (tmp_path / "ok.bin").read_bytes() == data
    finally:
        inner.stop()
