"""API keys with roles (read < predict < admin) and a per-key token-bucket rate limit.

Keys come from `AuthSettings.keys`; a request carries one in `X-API-Key` or
`Authorization: Bearer <key>`, a WebSocket also in the `api_key` query parameter (browsers cannot
set headers on WebSockets). Missing or unknown key -> 401, too weak a role -> 403, over the rate
-> 429 with `Retry-After`.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from harclip.config import AuthSettings
from harclip.wire import ApiError

Role = Literal["read", "predict", "admin"]
_RANK: Mapping[str, int] = {"read": 0, "predict": 1, "admin": 2}
KEY_PREFIX = "hk_"


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe), e.g. for `make demo`."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the key's role and a short, loggable key id (never the key itself)."""

    role: Role
    key_id: str


ANONYMOUS = Principal("admin", "anonymous")


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` returns 0 when allowed, else the seconds
    until a token is available. `clock` is injectable so tests need no sleeps."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


def key_from(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The API key a request or WebSocket handshake carries, if any."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    authz = headers.get("authorization", "")
    scheme, _, value = authz.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if query is not None and query.get("api_key"):
        return query["api_key"].strip()
    return None


class Authenticator:
    """Checks keys and roles and applies the per-key rate limit."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._keys = [(k.encode(), role) for k, role in settings.keys.items()]
        self._buckets = {
            k: TokenBucket(settings.rate_per_s, settings.burst, clock) for k in settings.keys
        }

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def check(self, key: str | None, role: Role) -> Principal:
        """The principal for `key` if it may act as `role`; `ApiError` 401/403/429 otherwise."""
        if not self._settings.enabled:
            return ANONYMOUS
        if not key:
            raise ApiError(
                401,
                "missing_api_key",
                "an API key is required: send X-API-Key or Authorization: Bearer <key>",
                {"WWW-Authenticate": "Bearer"},
            )
        found = self._lookup(key)
        if found is None:
            raise ApiError(
                401, "invalid_api_key", "unknown API key", {"WWW-Authenticate": "Bearer"}
            )
        known, granted = found
        principal = Principal(granted, key_id=known[:6] + "…")
        if _RANK[granted] < _RANK[role]:
            raise ApiError(403, "forbidden", f"this key has role {granted!r}; {role!r} is needed")
        wait = self._buckets[known].take()
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {self._settings.rate_per_s:g} requests/s exceeded",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return principal

    def _lookup(self, key: str) -> tuple[str, Role] | None:
        raw = key.encode()
        found: tuple[str, Role] | None = None
        for known, role in self._keys:  # compare with every key: no early exit to time
            if hmac.compare_digest(raw, known):
                found = (known.decode(), role)
        return found


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def requires(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that admits requests whose key has at least `role`."""

    async def dependency(
        request: Request,
        api_key: Annotated[str | None, Depends(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        auth: Authenticator = request.app.state.auth
        key = api_key or (bearer.credentials if bearer else None)
        return auth.check(key, role)

    return dependency
