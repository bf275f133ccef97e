"""Model host names and addresses: the allow-list's entries, and which addresses are public.

Standard library only (the settings parse `MODEL_HOSTS` with it at start-up, before aiohttp is
imported); guard.py applies them to downloads.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_MODEL_HOSTS = ("huggingface.co", "hf.co", "civitai.com")
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not routable on the internet


def public_address(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for loopback, private, link-local,
    multicast, unspecified and reserved ones, also when an IPv6 address embeds such an IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return public_address(embedded)
        if ip.is_site_local:
            return False
    elif ip in SHARED_V4:
        return False
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def normalize_host(entry: str) -> str | None:
    """A lower-case host name or a canonical IP address; None when `entry` is neither."""
    text = entry.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    return text if HOST_RE.match(text) else None


def parse_hosts(raw: str | list[str] | tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(normalized hosts, the entries that are not host names) from a comma/space list."""
    items = re.split(r"[,\s;]+", raw) if isinstance(raw, str) else list(raw)
    hosts: list[str] = []
    bad: list[str] = []
    for item in items:
        if not str(item).strip():
            continue
        host = normalize_host(str(item))
        if host is None:
            bad.append(str(item))
        elif host not in hosts:
            hosts.append(host)
    return tuple(hosts), bad


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
