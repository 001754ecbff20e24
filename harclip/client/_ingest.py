"""Frames sent over the API's ingest WebSocket, for both client faces: each binary message is
one encoded image, answered by an `Ack` once Kafka has it or by an `error` message (raised as its
`ApiError`, with the status the server gave it)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping

from harclip.client._requests import ingest_path, ws_url
from harclip.client.errors import ConnectionFailed, error_from_message
from harclip.client.subscription import MAX_MESSAGE_BYTES, refused
from harclip.wire import Ack, ErrorMessage, parse_server_message


def _ack(raw: str | bytes) -> Ack | None:
    """The frame's `Ack`, None for a message that is not about it; an `error` raises."""
    message = parse_server_message(raw)
    if isinstance(message, ErrorMessage):
        raise error_from_message(message)
    return message if isinstance(message, Ack) else None


async def ingest(
    base_url: str,
    headers: Mapping[str, str],
    stream_id: str,
    frames: Iterable[bytes] | AsyncIterable[bytes],
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
                await socket.send(data)
                ack = None
                while ack is None:
                    ack = _ack(await socket.recv())
                acks.append(ack)
    except InvalidStatus as e:
        raise refused(e) from None
    except (ConnectionClosed, OSError, TimeoutError) as e:
        raise ConnectionFailed(f"ingest to {base_url} failed: {e!r}") from None
    return acks


def ingest_sync(
    base_url: str, headers: Mapping[str, str], stream_id: str, frames: Iterable[bytes]
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
                socket.send(data)
                ack = None
                while ack is None:
                    ack = _ack(socket.recv())
                acks.append(ack)
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
