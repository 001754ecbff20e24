"""The outbound-URL guard (SSRF), one for the API's image-URL fetch (`api/urlfetch.py`) and the
events app's webhooks: http/https only; every address a host resolves to must be public (no
loopback, private, link-local, multicast, reserved, unspecified, shared or documentation range,
IPv4 or IPv6, IPv4-mapped/compatible/6to4/Teredo/NAT64 included; legacy numeric forms such as
`127.1`, `2130706433`, `0x7f000001` and `0177.0.0.1` are parsed as the C resolver would); an
explicit deny list (`DENIED_NETWORKS`) covers the special-purpose ranges Python's `ipaddress`
tables miss. The caller connects to the checked address (`pinned_request`), so a DNS answer
cannot change between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from harclip.errors import HarclipError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Refused whatever Python's `ipaddress` tables say (they differ between Python versions and miss
# some: fec0::/10 site-local, most of 192.0.0.0/24, 3fff::/20, 192.88.99.0/24 are "global" in
# 3.11). Special-purpose registries of IANA; the embedded IPv4 forms are checked before this.
DENIED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
        "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
        "fec0::/10", "ff00::/8",
    )
)  # fmt: skip


class UrlNotAllowed(HarclipError):
    """The URL's scheme, form or destination address is refused."""


class UrlFetchFailed(HarclipError):
    """The URL could not be fetched (DNS, connection, timeout, HTTP status, too many redirects)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the syntactic checks."""

    url: str
    scheme: str
    host: str  # lower-case, IDNA-encoded, brackets and trailing dot removed
    port: int


def parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` as inet_aton() reads it (1-4 dot-separated parts, each decimal, octal with a leading
    0 or hex with 0x; the last part fills the remaining bytes), or None if it is not numeric.
    A numeric-looking host that is malformed raises `UrlNotAllowed`."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = []
    for p in parts:
        try:
            if p.lower().startswith("0x"):
                values.append(int(p[2:] or "0", 16))
            elif len(p) > 1 and p.startswith("0"):
                values.append(int(p, 8))
            else:
                values.append(int(p, 10))
        except ValueError:
            raise UrlNotAllowed(f"malformed numeric host {host!r}") from None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise UrlNotAllowed(f"malformed numeric host {host!r}")
    n = 0
    for v in head:
        n = (n << 8) | v
    n = (n << (8 * (5 - len(values)))) | last
    return ipaddress.IPv4Address(n)


def address_problem(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why `ip` must not be contacted, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_problem(embedded, allow_loopback=allow_loopback)
            return f"{inner} (embedded in {ip})" if inner else None
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    for net in DENIED_NETWORKS:
        if ip.version == net.version and ip in net:
            return f"{ip} is a special-purpose address ({net})"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-public"),
    )
    for bad, what in checks:
        if bad:
            return f"{ip} is a {what} address"
    return None


def check_url(url: str) -> Target:
    """Syntactic checks: scheme, host present, no credentials, port in range. `UrlNotAllowed`."""
    if len(url) > 2048:
        raise UrlNotAllowed("URL longer than 2048 characters")
    url = url.strip()
    if any(c <= " " or c == "\x7f" for c in url):  # urlsplit drops tabs; httpx refuses them
        raise UrlNotAllowed("malformed URL: it contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UrlNotAllowed(f"malformed URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlNotAllowed(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowed("credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlNotAllowed("the URL has no host")
    if "%" not in host and ":" not in host:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlNotAllowed(f"invalid host name {host!r}") from None
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlNotAllowed(f"{host} is a loopback name")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80))


async def resolve_checked(target: Target, *, allow_loopback: bool = False) -> IPAddress:
    """The address to connect to: the host's literal or every resolved address must be allowed
    (one bad answer refuses the URL, since a later connection could pick it)."""
    literal = _literal_ip(target.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as e:
            raise UrlFetchFailed(f"cannot resolve host {target.host!r}: {e}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise UrlFetchFailed(f"host {target.host!r} has no address")
    for ip in addresses:
        problem = address_problem(ip, allow_loopback=allow_loopback)
        if problem:
            raise UrlNotAllowed(f"refused {target.host!r}: {problem}")
    return addresses[0]


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return parse_numeric_ipv4(host)


def pinned_request(target: Target, ip: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL with the checked address as host, headers with the original Host, httpx extensions
    with the TLS server name): a request built from these goes to `ip` and nowhere else."""
    import httpx

    url = str(httpx.URL(target.url).copy_with(host=str(ip)))
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header += f":{target.port}"
    return url, {"Host": host_header}, {"sni_hostname": target.host}
