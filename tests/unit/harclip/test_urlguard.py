"""harclip.urlguard: every private, loopback and special-purpose address form is refused."""

from __future__ import annotations

import ipaddress

import pytest

from harclip.urlguard import (
    Target,
    UrlNotAllowed,
    address_problem,
    check_url,
    parse_numeric_ipv4,
    resolve_checked,
)

REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "017700000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[2002:7f00:1::]",
    "[64:ff9b::a00:1]",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "0.0.0.0",
    "0",
    "[::]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "127.0.0.1.",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_private_hosts_are_refused(host: str) -> None:
    with pytest.raises(UrlNotAllowed):
        target = check_url(f"http://{host}/image.jpg")
        await resolve_checked(target)


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "[::1]", "[::ffff:127.0.0.1]"])
async def test_loopback_only_when_allowed(host: str) -> None:
    ip = await resolve_checked(check_url(f"http://{host}:8080/x"), allow_loopback=True)
    assert ip.is_loopback or getattr(ip, "ipv4_mapped", None) is not None


async def test_loopback_allowance_keeps_private_refused() -> None:
    with pytest.raises(UrlNotAllowed):
        await resolve_checked(check_url("http://10.1.2.3/"), allow_loopback=True)


async def test_name_resolving_to_loopback_is_refused() -> None:
    # `ip6-localhost`/`localhost` style names come from /etc/hosts; build a Target directly so the
    # syntactic "localhost" shortcut is bypassed and the resolver answer is what gets checked.
    with pytest.raises(UrlNotAllowed, match="loopback"):
        await resolve_checked(Target("http://localhost/", "http", "localhost", 80))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http:///nohost",
        "http://user:pass@example.com/a.jpg",
        "http://example.com:99999/",
        "//example.com/a.jpg",
        "http://" + "a" * 3000 + ".com/",
    ],
)
def test_bad_url_forms_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url)


def test_public_addresses_pass() -> None:
    for ip in ("93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert address_problem(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("1.2.3.4", "1.2.3.4"),
    ],
)
def test_numeric_forms_parse_like_inet_aton(host: str, expected: str) -> None:
    assert parse_numeric_ipv4(host) == ipaddress.IPv4Address(expected)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.com", "a1", "0x.example"])
def test_names_are_not_numeric(host: str) -> None:
    assert parse_numeric_ipv4(host) is None


@pytest.mark.parametrize("host", ["08.0.0.1", "256.0.0.1", "1.2.3.4294967296", "0xfffffffff"])
def test_malformed_numeric_hosts_are_refused(host: str) -> None:
    with pytest.raises(UrlNotAllowed):
        parse_numeric_ipv4(host)


# Addresses that Python 3.11's `ipaddress` calls global; the explicit deny list refuses them.
MISSED_BY_IPADDRESS = [
    "[fec0::1]", "[feff::1]", "192.0.0.9", "192.0.0.100", "192.0.0.255", "[3fff::1]",
    "192.88.99.1", "[3fff:0:1::]",
]  # fmt: skip


@pytest.mark.parametrize("host", MISSED_BY_IPADDRESS)
async def test_special_purpose_ranges_are_refused(host: str) -> None:
    ip = ipaddress.ip_address(host.strip("[]"))
    assert address_problem(ip) is not None
    with pytest.raises(UrlNotAllowed, match="special-purpose"):
        await resolve_checked(check_url(f"http://{host}/x.jpg"))


@pytest.mark.parametrize(
    "url",
    ["http://exa\tmple.com/x.jpg", "http://example.com/a\tb.jpg", "http://example.com/a b.jpg",
     "http://example.com/\nx.jpg", "http://example.com/\x00", "http://example.com/\x7f"],
)  # fmt: skip
def test_whitespace_and_control_characters_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="malformed URL"):
        check_url(url)
