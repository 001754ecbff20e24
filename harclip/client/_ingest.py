"""Frames sent over the API's ingest WebSocket, for both client faces: each binary message is
one encoded image, answered by an `Ack` once Kafka has it or by an `error` message (raised as its
`ApiError`, with the status the server gave it).

A frame refused for a while (an `error` with `retry_after`: the key's rate limit, an overloaded
decode pool, Kafka not taking it) is sent again after that many seconds, so a source faster than
the key's rate is paced to it instead of failing half-way; `RateLimited` (or the refusal's error)
raises once one frame would wait more than `retry_for_s` in all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping

from harclip.client._requests import ingest_path, ws_url
from harclip.client.errors import ConnectionFailed, error_from_message
from harclip.client.subscription import MAX_MESSAGE_BYTES, refused
from harclip.wire import Ack, ErrorMessage, parse_server_message

# How long one frame may wait, in all, on the server's `retry_after` before its refusal raises.
RETRY_FOR_S = 60.0


def _answer(raw: str | bytes) -> Ack | ErrorMessage | None:
    """The frame's `Ack` or `error`, None for a message that is not about it."""
    message = parse_server_message(raw)
    return message if isinstance(message, Ack | ErrorMessage) else None


def _wait_before_resending(refusal: ErrorMessage, waited: float, retry_for_s: float) -> float:
    """The seconds to wait before sending a refused frame again (it has waited `waited` so far);
    raises the refusal's error when it is not transient or the wait would pass `retry_for_s`."""
    wait = refusal.retry_after
    if wait is None or waited + wait > retry_for_s:
        raise error_from_message(refusal)
    return float(max(wait, 0.05))


async def ingest(
    base_url: str,
    headers: Mapping[str, str],
    stream_id: str,
    frames: Iterable[bytes] | AsyncIterable[bytes],
    retry_for_s: float = RETRY_FOR_S,
) -> list[Ack]:
    """Send `frames` one at a time, each once the previous is acknowledged; their `Ack`s."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    acks: list[Ack] = []
    try:
        async with connect(
            ws_url(base_url, ingest_path(stream_id)),
            additional_headers=dict(headers),
            max_size=MAX_MESSAGE_BYTES,
        ) as socket:
            async for data in _aiter(frames):
                waited = 0.0
                while True:
                    await socket.send(data)
                    answer = None
                    while answer is None:
                        answer = _answer(await socket.recv())
                    if isinstance(answer, Ack):
                        acks.append(answer)
                        break
                    wait = _wait_before_resending(answer, waited, retry_for_s)
                    waited += wait
                    await asyncio.sleep(wait)
    except InvalidStatus as e:
        raise refused(e) from None
    except (ConnectionClosed, OSError, TimeoutError) as e:
        raise ConnectionFailed(f"ingest to {base_url} failed: {e!r}") from None
    return acks


def ingest_sync(
    base_url: str,
    headers: Mapping[str, str],
    stream_id: str,
    frames: Iterable[bytes],
    retry_for_s: float = RETRY_FOR_S,
) -> list[Ack]:
    """`ingest` on websockets' blocking client."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    acks: list[Ack] = []
    try:
        with connect(
            ws_url(base_url, ingest_path(stream_id)),
            additional_headers=dict(headers),
            max_size=MAX_MESSAGE_BYTES,
        ) as socket:
            for data in frames:
                waited = 0.0
                while True:
                    socket.send(data)
                    answer = None
                    while answer is None:
                        answer = _answer(socket.recv())
                    if isinstance(answer, Ack):
                        acks.append(answer)
                        break
                    wait = _wait_before_resending(answer, waited, retry_for_s)
                    waited += wait
                    time.sleep(wait)
    except InvalidStatus as e:
        raise refused(e) from None
    except (ConnectionClosed, OSError, TimeoutError) as e:
        raise ConnectionFailed(f"ingest to {base_url} failed: {e!r}") from None
    return acks


async def _aiter(items: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(items, AsyncIterable):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x
