"""API keys with roles (read < predict < admin), stream scopes for ingest, and a per-key
token-bucket rate limit.

Keys come from `AuthSettings.keys`; a request carries one in `X-API-Key` or
`Authorization: Bearer <key>`, a WebSocket also in the `api_key` query parameter (browsers cannot
set headers on WebSockets). Missing or unknown key -> 401, too weak a role -> 403, over the rate
-> 429 with `Retry-After`. Every answer costs a token, refusals included: a known key's from its
own bucket, a missing or unknown key's from a bucket of the client's address.

With auth off (the default) reads and predict are open, but a write (PUT /labels, ingest) still
needs an admin key: a web page the operator's browser opens must not change what the API serves.
HTTP routes declare their role with `requires(role)`; `api.gate` checks it before the body is
read.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from harclip.config import AuthSettings, Role
from harclip.wire import ApiError

__all__ = [
    "ANONYMOUS",
    "PRINCIPAL_KEY",
    "Authenticator",
    "Principal",
    "Role",
    "TokenBucket",
    "generate_key",
    "key_from",
    "requires",
]

_RANK: Mapping[str, int] = {"read": 0, "predict": 1, "admin": 2}
KEY_PREFIX = "hk_"
PRINCIPAL_KEY = "harclip.principal"  # where the gate leaves the checked caller in the ASGI scope
_MAX_PEERS = 10_000  # client addresses with a bucket for refused keys (least recent forgotten)


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe), e.g. for `make demo`."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the key's role, a short loggable key id (never the key itself), the
    stream-id patterns it may ingest into (None: any) and its rate-limit bucket (None: none)."""

    role: Role
    key_id: str
    streams: tuple[str, ...] | None = None
    bucket: TokenBucket | None = field(default=None, compare=False, repr=False)
    name: str | None = None  # the grant's name (who holds the key), if given

    @property
    def who(self) -> str:
        """The name recorded for what this caller gives (feedback's `by`): the key's name, else
        its short id."""
        return self.name or self.key_id

    @property
    def known(self) -> bool:
        """Whether the caller showed a valid key."""
        return self.bucket is not None

    def may_ingest(self, stream_id: str) -> bool:
        return self.streams is None or any(fnmatchcase(stream_id, p) for p in self.streams)


ANONYMOUS = Principal("predict", "anonymous")  # auth off, no key: reads and predict only


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


@dataclass(frozen=True, slots=True)
class _Key:
    raw: bytes
    principal: Principal


class Authenticator:
    """Checks keys, roles and stream scopes, and applies the rate limit."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._keys = [
            _Key(k.encode(), Principal(g.role, k[:6] + "…", g.streams, self._bucket(), g.name))
            for k, g in settings.grants().items()
        ]
        self._peers: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self) -> TokenBucket:
        return TokenBucket(self._settings.rate_per_s, self._settings.burst, self._clock)

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def has_admin_key(self) -> bool:
        return any(k.principal.role == "admin" for k in self._keys)

    def check(
        self, key: str | None, role: Role, *, write: bool = False, peer: str | None = None
    ) -> Principal:
        """The principal for `key` if it may act as `role` (`write`: the call changes what others
        see, which needs an admin key when auth is off); `ApiError` 401/403/429 otherwise. Each
        call takes a token: from the key's bucket, or for a missing or unknown key from the
        bucket of `peer` (the client's address)."""
        if not self._settings.enabled and role != "admin" and not write:
            return ANONYMOUS
        needed: Role = role if self._settings.enabled else "admin"
        principal = self.identify(key)
        if principal is None:
            self._charge_peer(peer)
            if not key:
                raise ApiError(401, "missing_api_key", self._missing_message(), _CHALLENGE)
            raise ApiError(401, "invalid_api_key", "unknown API key", _CHALLENGE)
        self.charge(principal)
        if _RANK[principal.role] < _RANK[needed]:
            why = "" if self._settings.enabled else " (auth is off: writes need an admin key)"
            raise ApiError(
                403, "forbidden", f"this key has role {principal.role!r}; {needed!r} is needed{why}"
            )
        return principal

    def identify(self, key: str | None) -> Principal | None:
        """The principal of a known key (no role check, no token taken), else None."""
        if not key:
            return None
        raw = key.encode()
        found: Principal | None = None
        for k in self._keys:  # compare with every key: no early exit to time
            if hmac.compare_digest(raw, k.raw):
                found = k.principal
        return found

    def peek(self, key: str | None, peer: str | None) -> Principal | None:
        """For open routes that show more to a known caller: the principal of `key`, or None.
        A key that is given but unknown takes a token from `peer`'s bucket (429 when empty), so
        an open route is no faster oracle for guessing keys than the others."""
        principal = self.identify(key)
        if principal is None and key:
            self._charge_peer(peer)
        return principal

    def charge(self, principal: Principal) -> None:
        """Take one token from the principal's bucket (one more ingest frame, one more resume
        message, ...); `ApiError` 429 with `Retry-After` when it is empty."""
        if principal.bucket is not None:
            self._raise_if_waiting(principal.bucket.take())

    def _charge_peer(self, peer: str | None) -> None:
        name = peer or "unknown"
        bucket = self._peers.get(name)
        if bucket is None:
            bucket = self._peers[name] = self._bucket()
            if len(self._peers) > _MAX_PEERS:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(name)
        self._raise_if_waiting(bucket.take())

    def _raise_if_waiting(self, wait: float) -> None:
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {self._settings.rate_per_s:g} requests/s exceeded",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def _missing_message(self) -> str:
        how = "send X-API-Key or Authorization: Bearer <key>"
        if self._settings.enabled:
            return f"an API key is required: {how}"
        return f"auth is off, but a write needs an admin key (HARCLIP_AUTH__KEYS): {how}"


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def peer_of(scope: Mapping[str, Any]) -> str | None:
    """The client's address of an ASGI connection, if the server knows it."""
    client = scope.get("client")
    return str(client[0]) if client else None


def requires(role: Role, *, write: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that admits requests whose key has at least `role` (`write`: also
    with auth off, an admin key). `api.gate` finds it on the route and checks the key before the
    body is read; the dependency returns the principal the gate left (or checks it itself when
    the app runs without the gate). The key parameters document the schemes in OpenAPI."""

    async def dependency(
        request: Request,
        api_key: Annotated[str | None, Depends(_api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        checked = request.scope.get(PRINCIPAL_KEY)
        if isinstance(checked, Principal):
            return checked
        auth: Authenticator = request.app.state.auth
        key = api_key or (bearer.credentials if bearer else None)
        return auth.check(key, role, write=write, peer=peer_of(request.scope))

    dependency.harclip_role = (role, write)  # type: ignore[attr-defined]
    return dependency
