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


def test_auth_off_opens_reads_and_predict_but_not_writes() -> None:
    auth = Authenticator(AuthSettings(keys={"k-admin": "admin", "k-read": "read"}))
    assert auth.check(None, "read").key_id == "anonymous"
    assert auth.check(None, "predict").key_id == "anonymous"
    for role, write in (("admin", False), ("predict", True)):
        with pytest.raises(ApiError) as e:
            auth.check(None, role, write=write)  # type: ignore[arg-type]
        assert (e.value.status, e.value.code) == (401, "missing_api_key")
        assert "auth is off" in e.value.message
        with pytest.raises(ApiError) as e:
            auth.check("k-read", role, write=write)  # type: ignore[arg-type]
        assert e.value.status == 403
        assert auth.check("k-admin", role, write=write).role == "admin"  # type: ignore[arg-type]


def test_auth_off_without_an_admin_key_refuses_every_write() -> None:
    auth = Authenticator(AuthSettings())
    assert not auth.has_admin_key
    with pytest.raises(ApiError) as e:
        auth.check(None, "admin")
    assert e.value.status == 401


def test_refusals_cost_tokens_too() -> None:
    auth = _auth(rate=0.001, burst=2)
    for _ in range(2):  # a known key asking for too much: 403, charged to its bucket
        with pytest.raises(ApiError) as e:
            auth.check("k-read", "admin", peer="10.0.0.1")
        assert e.value.status == 403
    with pytest.raises(ApiError) as e:
        auth.check("k-read", "read", peer="10.0.0.1")
    assert e.value.status == 429
    for _ in range(2):  # unknown or missing keys: 401, charged to the client's address
        with pytest.raises(ApiError) as e:
            auth.check("guess", "read", peer="10.0.0.2")
        assert e.value.status == 401
    with pytest.raises(ApiError) as e:
        auth.check(None, "read", peer="10.0.0.2")
    assert e.value.status == 429 and e.value.headers["Retry-After"]
    with pytest.raises(ApiError) as e:
        auth.check("guess", "read", peer="10.0.0.3")  # another address, another bucket
    assert e.value.status == 401
    with pytest.raises(ApiError) as e:
        auth.peek("guess", "10.0.0.2")  # open routes that look at keys take a token as well
    assert e.value.status == 429


def test_charge_takes_a_token_per_message() -> None:
    clock = Clock()
    auth = _auth(clock, rate=0.001, burst=2)
    who = auth.check("k-predict", "predict")
    auth.charge(who)
    with pytest.raises(ApiError) as e:
        auth.charge(who)
    assert e.value.status == 429
    clock.now += 2000  # two tokens at 0.001/s
    auth.charge(who)


def test_keys_scoped_to_streams() -> None:
    grants = {"k-lobby": {"role": "predict", "streams": ["lobby-*", "door"]}, "k-any": "predict"}
    auth = Authenticator(AuthSettings(enabled=True, keys=grants))  # type: ignore[arg-type]
    lobby = auth.check("k-lobby", "predict")
    assert lobby.may_ingest("lobby-1") and lobby.may_ingest("door")
    assert not lobby.may_ingest("cam-1") and not lobby.may_ingest("Lobby-1")
    assert not lobby.may_ingest("door-2")
    assert auth.check("k-any", "predict").may_ingest("cam-1")


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
