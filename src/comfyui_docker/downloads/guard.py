"""Where a workflow may send our downloader: allowed model hosts, and never an internal address.

A workflow from the internet names its models' URLs (`properties.models`), and one click installs
them. Without a guard such a URL reaches whatever the pod can reach: ComfyUI's own API on
loopback, the cloud's metadata service, the LAN. So, for URLs a workflow declares (not for the
shipped catalog's own URLs):

* the URL's host must be on the allow-list (`MODEL_HOSTS`, default huggingface.co, hf.co,
  civitai.com; an entry also covers its subdomains, e.g. cdn-lfs.huggingface.co; the Settings
  page adds more). Only http and https.
* every address the host name resolves to must be a public one: no loopback, private, link-local,
  multicast, unspecified or reserved address, IPv4 or IPv6, IPv4-mapped IPv6 included. This is
  checked where the connection is made (`GuardedResolver`, so a DNS answer cannot change between
  the check and the connect) on the first request and on every redirect, and for address
  literals in the URL itself on every hop. An IP address listed in the allow-list itself (a mirror
  on your LAN) is allowed as listed.

`address_ok` is the injectable part: tests of the download engine that serve from 127.0.0.1 give
a guard that accepts it; the guard the product builds from the settings never does.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import UrlRefused
from .hosts import DEFAULT_MODEL_HOSTS, IPAddress, is_ip, normalize_host, public_address


@dataclass(frozen=True)
class UrlGuard:
    hosts: tuple[str, ...] = DEFAULT_MODEL_HOSTS
    address_ok: Callable[[IPAddress], bool] = public_address

    def host_allowed(self, host: str) -> bool:
        name = normalize_host(host)
        if name is None:
            return False
        return any(name == h or (not is_ip(h) and name.endswith("." + h)) for h in self.hosts)

    def address_allowed(self, ip: IPAddress) -> bool:
        return str(ip) in self.hosts or self.address_ok(ip)

    def refusal(self, url: str, *, declared: bool) -> str | None:
        """Why `url` may not be fetched (None: it may). `declared`: the URL the workflow names
        (its host must be allowed); otherwise a redirect hop (its address is checked)."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return "it is not a valid URL"
        if parts.scheme not in ("http", "https"):
            return f"only http and https URLs are downloaded, not {parts.scheme or 'this'}"
        if not host:
            return "the URL names no host"
        if declared and not self.host_allowed(host):
            return f"{host} is not an allowed model host"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None  # a name: checked when it is resolved (GuardedResolver)
        if not self.address_allowed(ip):
            return f"{host} is an internal address"
        return None

    def check(self, url: str, *, declared: bool) -> None:
        why = self.refusal(url, declared=declared)
        if why is not None:
            raise UrlRefused(
                f"refused to download {url[:200]}: {why}",
                hint="a workflow may only name files on the allowed model hosts (MODEL_HOSTS, or "
                "Settings > Model hosts); internal addresses are never fetched",
                url=url[:500],
            )


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host name any of whose addresses the guard refuses.

    Used by the session that fetches workflow-declared URLs: every connection (the first request,
    each redirect, each piece) resolves through it, so what is checked is what is connected to."""

    def __init__(self, guard: Callable[[], UrlGuard], inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        guard = self.guard()
        for item in found:
            ip = ipaddress.ip_address(item["host"])
            if not guard.address_allowed(ip):
                raise UrlRefused(
                    f"refused to download from {host}: it resolves to the internal address {ip}",
                    hint="workflow downloads never go to loopback, private or link-local addresses",
                    host=host,
                    address=str(ip),
                )
        return found

    async def close(self) -> None:
        await self.inner.close()
