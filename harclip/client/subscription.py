"""Live predictions or events over the API's WebSocket, for both client faces: `Subscription`
(async iterator) and `SyncSubscription` (plain iterator, on websockets' blocking client: no event
loop and no thread of its own). Both reconnect by themselves and resume after the last entry they
delivered, so a dropped connection loses nothing still in the server's Redis cap; both yield
`harclip.wire.PredictionMessage`s (`/ws/streams`) or `EventMessage`s (`/ws/events`); `.id` is
the resume position.

`_Resumer` holds what the two share: positions, de-duplication after a reconnect, drop counts,
the URL to (re)connect to and the reading of server messages.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from harclip.client._requests import ws_url
from harclip.client.errors import ConnectionFailed, error_for, error_from_message
from harclip.retry import Backoff
from harclip.wire import (
    ApiError,
    Dropped,
    ErrorMessage,
    EventMessage,
    PredictionMessage,
    Subscribed,
    parse_server_message,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection as AsyncConnection
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import ClientConnection

MAX_MESSAGE_BYTES = 2**24  # largest WebSocket message accepted from the server
_RECONNECT = Backoff(0.2, 5.0)  # pause before the first reconnect, and the longest, seconds
_TRANSIENT_STATUSES = frozenset({503})  # error messages that mean "not now", not "never"
_RECONNECT_CODES = frozenset({1001, 1012, 1013})  # going away, service restart, try again later
M = TypeVar("M", PredictionMessage, EventMessage)


def refused(e: InvalidStatus) -> ApiError:
    """The error of a handshake the server answered with an HTTP error (401, 403, 429, ...)."""
    r = e.response
    return error_for(r.status_code, bytes(r.body or b""), dict(r.headers.raw_items()))


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class _Resumer(Generic[M]):
    """The protocol state of one subscription, whatever drives its connections; `kind` is the
    message type it delivers."""

    def __init__(
        self,
        kind: type[M],
        base_url: str,
        path: str,
        stream_id: str | None,
        after: str | Mapping[str, str] | None,
        max_reconnects: int,
    ) -> None:
        self.kind: type[M] = kind
        self.base_url = base_url
        self.path = path
        self.stream_id = stream_id
        self.positions: dict[str, str] = {}
        if isinstance(after, str):
            if stream_id is None:
                raise ValueError("give `after` per stream ({stream: entry id}) for all streams")
            self.positions[stream_id] = after
        elif after is not None:
            self.positions.update(after)
        self.max_reconnects = max_reconnects
        self.on_subscribed: Callable[[], None] = lambda: None  # set by the face
        self.on_interrupted: Callable[[bool], None] = lambda on: None  # set by the face
        self.dropped = 0
        self.reconnects = 0
        self.unavailable = 0  # transient error messages of the server (503), ignored
        self.transient: ApiError | None = None  # the last one, until reading works again
        self.failures = 0  # connections lost in a row (reset once the server reads again)

    def url(self) -> str:
        """Where to (re)connect: resuming after the last entry delivered, if any."""
        query: dict[str, str] = {}
        if self.stream_id and self.stream_id in self.positions:
            query["after"] = self.positions[self.stream_id]
        elif not self.stream_id and self.positions:
            query["after"] = json.dumps(self.positions)
        return ws_url(self.base_url, self.path, query)

    def read(self, raw: str | bytes) -> M | None:
        """A server message: the prediction (or event) to deliver, or None (control messages,
        or an entry already delivered before a reconnect). An `error` message raises its
        `ApiError`."""
        message = parse_server_message(raw)
        if isinstance(message, self.kind):
            last = self.positions.get(message.stream_id)
            if last is not None and _entry_key(message.id) <= _entry_key(last):
                return None
            self.positions[message.stream_id] = message.id
            self._set_transient(None)
            return message
        if isinstance(message, Subscribed):
            self.failures = 0  # reading again: a later loss starts a new count
            self._set_transient(None)
            self.on_subscribed()
        elif isinstance(message, Dropped):
            self.dropped += message.count
        elif isinstance(message, ErrorMessage):
            error = error_from_message(message)
            if message.status not in _TRANSIENT_STATUSES:
                raise error
            # The server could not read for now (Redis down, say): it retries by itself while the
            # connection stays open; if it closes instead, the face reconnects with backoff.
            self.unavailable += 1
            self._set_transient(error)
        return None

    def _set_transient(self, error: ApiError | None) -> None:
        if (error is None) != (self.transient is None):
            self.on_interrupted(error is not None)
        self.transient = error

    def closed(self, code: int | None) -> bool:
        """Whether a connection the server closed (with close code `code`) should be reopened:
        after a transient error message, or when the server went away or restarts."""
        return self.transient is not None or code in _RECONNECT_CODES

    def lost(self, e: Exception) -> float:
        """Count a lost connection; the pause before reconnecting (seconds), or
        `ConnectionFailed` after `max_reconnects` failures in a row."""
        self.failures += 1
        if replace(_RECONNECT, retries=self.max_reconnects).gives_up(self.failures):
            raise ConnectionFailed(f"subscription lost: {e!r}") from None
        self.reconnects += 1
        return _RECONNECT.pause(self.failures)


class Subscription(Generic[M]):
    """Async iterator of `PredictionMessage`s (or `EventMessage`s) that reconnects and resumes by
    itself.

    `positions` holds the last entry id delivered per stream; `dropped` counts predictions the
    server dropped because this client read too slowly; `reconnects` counts reconnections;
    `subscribed` is set once the server reads for this client (every prediction written after
    that is delivered). The server's transient errors (503 `unavailable`: Redis down, say) do
    not end the iteration: `unavailable` counts them and `interrupted` is set until predictions
    flow again (if the server closes meanwhile, it reconnects with backoff); other error
    messages raise their `ApiError`. `close()` (or leaving `async with`) ends the iteration.
    """

    def __init__(self, resumer: _Resumer[M], headers: Mapping[str, str]) -> None:
        self._r: _Resumer[M] = resumer
        self._headers = dict(headers)
        self._socket: AsyncConnection | None = None
        self._closed = False
        self.subscribed = asyncio.Event()
        self.interrupted = asyncio.Event()
        resumer.on_subscribed = self.subscribed.set
        resumer.on_interrupted = lambda on: (
            self.interrupted.set() if on else self.interrupted.clear()
        )

    @property
    def positions(self) -> dict[str, str]:
        return self._r.positions

    @property
    def dropped(self) -> int:
        return self._r.dropped

    @property
    def reconnects(self) -> int:
        return self._r.reconnects

    @property
    def unavailable(self) -> int:
        return self._r.unavailable

    def __aiter__(self) -> AsyncIterator[M]:
        return self._iterate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._socket is not None:
            await self._socket.close()

    async def _iterate(self) -> AsyncIterator[M]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        while not self._closed:
            try:
                async with connect(
                    self._r.url(), additional_headers=self._headers, max_size=MAX_MESSAGE_BYTES
                ) as socket:
                    self._socket = socket
                    async for raw in socket:
                        message = self._r.read(raw)
                        if message is not None:
                            yield message
                    if self._closed or not self._r.closed(socket.close_code):
                        return  # the server closed normally
                    lost: Exception = self._r.transient or ConnectionFailed("server went away")
                await asyncio.sleep(self._r.lost(lost))  # backoff before reconnecting
            except InvalidStatus as e:
                raise refused(e) from None
            except (ConnectionClosed, OSError, TimeoutError) as e:
                if self._closed:
                    return
                await asyncio.sleep(self._r.lost(e))  # backoff before reconnecting
            finally:
                self._socket = None


class SyncSubscription(Generic[M]):
    """Blocking iterator of `PredictionMessage`s (or `EventMessage`s), like `Subscription` (same
    attributes); it runs on websockets' blocking client in the caller's thread. `close()` may be
    called from another thread to end an iteration that waits for the next message."""

    def __init__(self, resumer: _Resumer[M], headers: Mapping[str, str]) -> None:
        self._r: _Resumer[M] = resumer
        self._headers = dict(headers)
        self._socket: ClientConnection | None = None
        self._closed = False
        self.subscribed = threading.Event()  # as Subscription.subscribed, for other threads
        self.interrupted = threading.Event()  # as Subscription.interrupted
        resumer.on_subscribed = self.subscribed.set
        resumer.on_interrupted = lambda on: (
            self.interrupted.set() if on else self.interrupted.clear()
        )

    @property
    def positions(self) -> dict[str, str]:
        return self._r.positions

    @property
    def dropped(self) -> int:
        return self._r.dropped

    @property
    def reconnects(self) -> int:
        return self._r.reconnects

    @property
    def unavailable(self) -> int:
        return self._r.unavailable

    def __iter__(self) -> Iterator[M]:
        return self._iterate()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        socket = self._socket
        if socket is not None:
            socket.close()

    def _iterate(self) -> Iterator[M]:
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        while not self._closed:
            try:
                with connect(
                    self._r.url(), additional_headers=self._headers, max_size=MAX_MESSAGE_BYTES
                ) as socket:
                    self._socket = socket
                    for raw in socket:
                        message = self._r.read(raw)
                        if message is not None:
                            yield message
                    if self._closed or not self._r.closed(socket.close_code):
                        return  # the server (or close()) closed normally
                    lost: Exception = self._r.transient or ConnectionFailed("server went away")
                time.sleep(self._r.lost(lost))  # backoff before reconnecting
            except InvalidStatus as e:
                raise refused(e) from None
            except (ConnectionClosed, OSError, TimeoutError) as e:
                if self._closed:
                    return
                time.sleep(self._r.lost(e))  # backoff before reconnecting
            finally:
                self._socket = None
