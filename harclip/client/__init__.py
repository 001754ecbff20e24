"""Python client of the harclip API, with two faces that have the same typed methods: `Client`
(blocking) and `AsyncClient` (asyncio). Both build every request with one builder
(`_requests`) and return the `harclip.wire` types the API declares; an error answer raises the
`ApiError` subclass of its HTTP status, carrying the status, code and message the server sent.
`subscribe` yields live `PredictionMessage`s and reconnects and resumes by itself (an async
iterator, or a plain iterator on websockets' blocking client); `ingest` returns one `Ack` per
frame.
"""

from harclip.client._async import AsyncClient
from harclip.client._sync import Client
from harclip.client.errors import (
    ApiError,
    BadRequest,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from harclip.client.subscription import Subscription, SyncSubscription

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Subscription",
    "SyncSubscription",
    "Unauthorized",
]
