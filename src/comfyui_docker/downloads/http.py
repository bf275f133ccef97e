"""One HTTP request of a download: redirects followed by hand, tokens by host, statuses mapped.

aiohttp would follow redirects with the original headers, so a Hugging Face token would reach
the CDN it redirects to. Here every hop gets the token of its own host only
(`token_for_host`), and a hop to another host never carries the previous one's. A token only
ever travels over https: an `http://huggingface.co/...` URL, or a redirect to one, gets none.
With a `guard` (URLs a workflow declared, see guard.py) the declared URL's host must be allowed
and no hop may name an internal address.

Statuses become typed errors: 401/403 -> GatedModel (which token, where to accept the
licence), 404/410 -> UrlNotFound; 429 and 5xx -> Transient (retried, honouring Retry-After).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..errors import DownloadError, GatedModel, UrlNotFound
from .guard import UrlGuard

MAX_REDIRECTS = 10
USER_AGENT = "comfyui-docker"
TokenLookup = Callable[[str], str | None]


class Transient(Exception):
    """A failure worth retrying (connection lost, timeout, 5xx, 429, short body)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RangeIgnored(Exception):
    """The server answered 200 to a Range request: resume is impossible, start over."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; the budget is consecutive failures without progress."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 60.0
    retry_after_cap: float = 300.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        return random.uniform(0, min(self.cap, self.base * 2 ** max(failures - 1, 0)))


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def token_env_for(host: str) -> str:
    host = host.lower()
    if host == "civitai.com" or host.endswith(".civitai.com"):
        return "CIVITAI_TOKEN"
    return "HF_TOKEN"


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


async def open_response(
    session: aiohttp.ClientSession,
    url: str,
    *,
    tokens: TokenLookup,
    start: int | None = None,
    end: int | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    licence_url: str | None = None,
    original_url: str | None = None,
    read_bufsize: int | None = None,
    guard: UrlGuard | None = None,
) -> tuple[aiohttp.ClientResponse, str]:
    """GET `url` (optionally a byte range), following redirects; return (response, final URL).

    The response has status 200 or 206 and is not yet read; the caller releases it.
    """
    if guard is not None:
        guard.check(original_url or url, declared=True)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        if guard is not None:
            guard.check(current, declared=False)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        token = tokens(host_of(current)) if urlsplit(current).scheme == "https" else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = await session.get(
                current,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                read_bufsize=read_bufsize,  # aiohttp's 64 KiB default pauses the socket far too often
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"cannot reach {host_of(current)}: {exc or type(exc).__name__}") from None
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise DownloadError(f"{host_of(current)} redirected without a Location", url=url)
            current = urljoin(current, location)
            continue
        if resp.status in (200, 206):
            return resp, current
        status = resp.status
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        resp.release()
        shown = original_url or url
        if status in (401, 403):
            host = host_of(shown)
            env = token_env_for(host)
            had = bool(tokens(host)) and urlsplit(current).scheme == "https"
            where = f" and accept the licence at {licence_url}" if licence_url else ""
            action = f"check that {env} is valid" if had else f"set {env}"
            raise GatedModel(
                f"{host} refused the download ({status}): the file is gated or needs a token",
                hint=f"{action}{where}",
                url=shown,
                status=status,
                token_env=env,
                licence_url=licence_url,
            )
        if status in (404, 410):
            raise UrlNotFound(
                f"the URL is dead ({status}): {shown}",
                hint="the file was moved or removed upstream; update the preset's url",
                url=shown,
                status=status,
            )
        if status == 416:
            raise RangeNotSatisfiable(status)
        if status == 429 or status >= 500:
            raise Transient(f"{host_of(current)} answered {status}", retry_after)
        raise DownloadError(f"{host_of(current)} answered {status} for {shown}", url=shown, status=status)
    raise DownloadError(f"too many redirects for {url}", url=url)


class RangeNotSatisfiable(Exception):
    """416: the range starts at or past the end of the file."""


def content_range_total(resp: aiohttp.ClientResponse) -> int | None:
    value = resp.headers.get("Content-Range", "")
    if "/" in value:
        total = value.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    return None


def content_range_start(resp: aiohttp.ClientResponse) -> int | None:
    value = resp.headers.get("Content-Range", "")
    if value.startswith("bytes ") and "-" in value:
        first = value[6:].split("-", 1)[0].strip()
        if first.isdigit():
            return int(first)
    return None


def monotonic() -> float:
    return time.monotonic()
