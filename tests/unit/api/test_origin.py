"""Host and Origin checks against DNS rebinding and foreign pages (pure functions)."""

from __future__ import annotations

import pytest

from api.origin import allowed_hosts, host_allowed, origin_allowed

HOSTS = allowed_hosts(("127.0.0.1", "localhost", "::1", "*.example.org"), "0.0.0.0")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "LOCALHOST.", "[::1]:8000", "[::1]",
     "api.example.org", "a.b.example.org:443"],
)  # fmt: skip
def test_served_hosts(host: str) -> None:
    assert host_allowed(host, HOSTS)


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.com", "evil.com:8000", "127.0.0.1.evil.com", "example.org", "[::2]:80",
     "localhost:notaport", "notexample.org"],
)  # fmt: skip
def test_other_hosts_are_refused(host: str | None) -> None:
    assert not host_allowed(host, HOSTS)


def test_the_bound_address_is_served_unless_it_is_a_wildcard() -> None:
    assert "10.1.2.3" in allowed_hosts((), "10.1.2.3")
    assert allowed_hosts(("localhost",), "::") == ("localhost",)
    assert host_allowed("anything", allowed_hosts(("*",), "127.0.0.1"))


@pytest.mark.parametrize(
    ("origin", "host"),
    [("http://127.0.0.1:8000", "127.0.0.1:8000"), ("http://localhost", "localhost:80"),
     ("https://api.example.org", "api.example.org"), ("http://[::1]:8000", "[::1]:8000"),
     ("https://ui.example", "127.0.0.1:8000")],
)  # fmt: skip
def test_own_pages_and_listed_origins_may_call(origin: str, host: str) -> None:
    assert origin_allowed(origin, host, ("https://ui.example/",))


@pytest.mark.parametrize(
    ("origin", "host"),
    [("http://evil.com", "127.0.0.1:8000"), ("null", "127.0.0.1:8000"),
     ("http://127.0.0.1:9999", "127.0.0.1:8000"), ("https://127.0.0.1:8443", "127.0.0.1:8000"),
     ("file://", "127.0.0.1:8000"), ("http://localhost:8000", "127.0.0.1:8000"),
     ("http://ui.example", "127.0.0.1:8000"), ("http://127.0.0.1:8000", None)],
)  # fmt: skip
def test_foreign_pages_are_refused(origin: str, host: str | None) -> None:
    assert not origin_allowed(origin, host, ("https://ui.example",))


def test_a_wildcard_origin_list_allows_any_page() -> None:
    assert origin_allowed("http://evil.com", "127.0.0.1:8000", ("*",))
