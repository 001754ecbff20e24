"""API keys, roles and the per-key token bucket, with a fake clock (no sleeps)."""

from __future__ import annotations

import pytest

from api.auth import Authenticator, TokenBucket, generate_key, key_from
from api.errors import ApiError
from harclip.config import AuthSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


KEYS = {"k-read": "read", "k-predict": "predict", "k-admin": "admin"}


def _auth(clock: Clock | None = None, rate: float = 10.0, burst: int = 100) -> Authenticator:
    s = AuthSettings(enabled=True, keys=KEYS, rate_per_s=rate, burst=burst)  # type: ignore[arg-type]
    return Authenticator(s, clock or Clock())


def test_disabled_admits_everyone() -> None:
    assert Authenticator(AuthSettings()).check(None, "admin").key_id == "anonymous"


@pytest.mark.parametrize(
    ("key", "role", "status"),
    [
        (None, "read", 401),
        ("", "read", 401),
        ("nope", "read", 401),
        ("k-read", "predict", 403),
        ("k-read", "admin", 403),
        ("k-predict", "admin", 403),
    ],
)
def test_refusals(key: str | None, role: str, status: int) -> None:
    with pytest.raises(ApiError) as e:
        _auth().check(key, role)  # type: ignore[arg-type]
    assert e.value.status == status


@pytest.mark.parametrize(
    ("key", "role"),
    [("k-read", "read"), ("k-predict", "read"), ("k-predict", "predict"), ("k-admin", "admin")],
)
def test_roles_include_weaker_ones(key: str, role: str) -> None:
    assert _auth().check(key, role).role == KEYS[key]  # type: ignore[arg-type]


def test_rate_limit_per_key() -> None:
    clock = Clock()
    auth = _auth(clock, rate=2.0, burst=3)
    for _ in range(3):
        auth.check("k-read", "read")
    with pytest.raises(ApiError) as e:
        auth.check("k-read", "read")
    assert e.value.status == 429
    assert e.value.headers["Retry-After"] == "1"
    auth.check("k-admin", "read")  # other keys have their own bucket
    clock.now += 0.5  # one token at 2/s
    auth.check("k-read", "read")
    with pytest.raises(ApiError):
        auth.check("k-read", "read")


def test_token_bucket_refills_up_to_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() == pytest.approx(0.1)
    clock.now += 60
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() > 0


def test_key_sources() -> None:
    assert key_from({"x-api-key": "a"}) == "a"
    assert key_from({"authorization": "Bearer b"}) == "b"
    assert key_from({"authorization": "Basic b"}) is None
    assert key_from({}, {"api_key": "c"}) == "c"
    assert key_from({}, None) is None


def test_generated_keys_are_unique_and_long() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and len(a) > 40 and a.startswith("hk_")
