"""Fetch an image from a user-supplied URL without letting the URL reach the server's own network
(SSRF): http/https only; every address the host resolves to must be public (no loopback, private,
link-local, multicast, reserved, unspecified, shared or documentation range, IPv4 or IPv6,
IPv4-mapped/compatible/6to4/Teredo included; legacy numeric forms such as `127.1`, `2130706433`,
`0x7f000001` and `0177.0.0.1` are parsed as the C resolver would); each redirect hop is checked
again; the connection goes to the checked address (a DNS answer cannot change between check and
connect); connect/read timeouts, an overall deadline and a size cap while streaming. Bodies are
read as sent: a `Content-Encoding` other than identity is refused (a 1 KB stack of gzip layers
would inflate to GiBs before any cap on decoded bytes could trip). An explicit deny list
(`DENIED_NETWORKS`) covers the special-purpose ranges that Python's `ipaddress` tables miss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from harclip.errors import HarclipError
from harclip.urlguard import (
    IPAddress,
    Target,
    UrlFetchFailed,
    UrlNotAllowed,
    check_url,
    pinned_request,
    resolve_checked,
)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class UrlTooLarge(HarclipError):
    """The body at the URL is larger than the cap."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits of one fetch: seconds, redirect hops, bytes. `allow_loopback` is for tests only."""

    timeout_s: float = 5.0
    max_redirects: int = 3
    max_bytes: int = 10 * 1024 * 1024
    allow_loopback: bool = False


async def fetch(url: str, policy: FetchPolicy, client: httpx.AsyncClient) -> bytes:
    """GET `url` under `policy`, following checked redirects; the body bytes.

    `client` must not follow redirects or read proxy settings from the environment (see
    `make_client`). Raises `UrlNotAllowed`, `UrlFetchFailed` or `UrlTooLarge`.
    """
    deadline = policy.timeout_s * (2 + policy.max_redirects)
    try:
        async with asyncio.timeout(deadline):
            return await _follow(url, policy, client)
    except TimeoutError:
        raise UrlFetchFailed(f"fetching the URL took longer than {deadline:g} s") from None


async def _follow(url: str, policy: FetchPolicy, client: httpx.AsyncClient) -> bytes:
    for _ in range(policy.max_redirects + 1):
        target = check_url(url)
        ip = await resolve_checked(target, allow_loopback=policy.allow_loopback)
        location = await _get_one(target, ip, policy, client)
        if isinstance(location, bytes):
            return location
        url = urljoin(target.url, location)
    raise UrlFetchFailed(f"more than {policy.max_redirects} redirects")


async def _get_one(
    target: Target, ip: IPAddress, policy: FetchPolicy, client: httpx.AsyncClient
) -> bytes | str:
    """One hop to `ip`: the body, or the redirect location (str)."""
    try:
        request_url, headers, extensions = pinned_request(target, ip)
    except httpx.InvalidURL as e:
        raise UrlNotAllowed(f"malformed URL: {e}") from None
    try:
        async with client.stream(
            "GET",
            request_url,
            headers=headers | {"Accept": "image/*", "Accept-Encoding": "identity"},
            extensions=extensions,
        ) as response:
            if response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise UrlFetchFailed(f"redirect {response.status_code} without a Location")
                return str(location)
            if response.status_code != 200:
                raise UrlFetchFailed(f"the URL answered HTTP {response.status_code}")
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding not in ("", "identity"):  # asked for identity: a few bytes could be GiBs
                raise UrlFetchFailed(
                    f"the URL answered with Content-Encoding {encoding[:60]!r}; only unencoded "
                    "bodies are read"
                )
            return await _read_capped(response, policy.max_bytes)
    except httpx.TimeoutException:
        raise UrlFetchFailed(f"timed out after {policy.timeout_s:g} s") from None
    except httpx.HTTPError as e:
        raise UrlFetchFailed(f"cannot fetch the URL: {type(e).__name__}: {e}") from None


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise UrlTooLarge(f"the URL's body is {int(declared):,} bytes; the limit is {max_bytes:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():  # the bytes as sent: nothing is decompressed
        size += len(chunk)
        if size > max_bytes:
            raise UrlTooLarge(f"the URL's body exceeds the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_client(policy: FetchPolicy) -> httpx.AsyncClient:
    """An httpx client fit for `fetch`: no redirects, no environment proxies, timeouts set."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(policy.timeout_s),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        headers={"User-Agent": "harclip-api"},
    )
