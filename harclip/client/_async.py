"""`AsyncClient`: the asyncio face of the harclip API client. Every method sends one `Call` of
`harclip.client._requests` and returns its `harclip.wire` type; `Client` has the same methods."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from harclip.client import _ingest, _requests
from harclip.client._requests import Call, auth_headers
from harclip.client.errors import ConnectionFailed
from harclip.client.subscription import Subscription, _Resumer
from harclip.messages import StreamAction, StreamStats
from harclip.messages.feedback import Feedback, Verdict
from harclip.watches.spec import WatchSpec
from harclip.wire import (
    Ack,
    EventMessage,
    EventPage,
    FeedbackCounts,
    FeedbackPage,
    LabelSet,
    Prediction,
    PredictionMessage,
    PredictionPage,
    PredictResponse,
    RulesDoc,
    SearchResponse,
    ServiceInfo,
    StreamList,
)
from harclip.wire.watches import WatchesDoc, WatchExample, WatchInfo

T = TypeVar("T")


class AsyncClient:
    """Async client of the harclip API at `url` (e.g. "http://127.0.0.1:8000"). Error answers
    raise the `ApiError` subclass of their status (`harclip.client.errors`); an API that cannot
    be reached raises `ConnectionFailed`."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(api_key), timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def ws_url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The WebSocket URL of `path` on this API."""
        return _requests.ws_url(self.url, path, query)

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.send(call.build(self._http))
        except httpx.TransportError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e!r}") from None
        return call.answer(response)

    # -- predict -----------------------------------------------------------------------------

    async def predict_bytes(
        self, data: bytes, filename: str = "image", top_k: int | None = None
    ) -> PredictResponse:
        """The prediction for one encoded image (multipart upload)."""
        return await self._send(_requests.predict_bytes(data, filename, top_k))

    async def predict_from_image_path(
        self, path: str | Path, top_k: int | None = None
    ) -> PredictResponse:
        return await self._send(_requests.predict_from_image_path(path, top_k))

    async def predict_from_image_url(self, url: str, top_k: int | None = None) -> PredictResponse:
        """The server fetches `url` (public http(s) addresses only)."""
        return await self._send(_requests.predict_from_image_url(url, top_k))

    async def predict_base64(self, data: bytes, top_k: int | None = None) -> PredictResponse:
        """The image sent base64-encoded in a JSON body."""
        return await self._send(_requests.predict_base64(data, top_k))

    # -- reads -------------------------------------------------------------------------------

    async def info(self) -> ServiceInfo:
        return await self._send(_requests.info())

    async def streams(self, *, since_ms: int | None = None, limit: int | None = None) -> StreamList:
        """Streams by last-seen time (ms since epoch), newest first."""
        return await self._send(_requests.streams(since_ms=since_ms, limit=limit))

    async def latest(self, stream_id: str) -> Prediction:
        """The stream's latest prediction (`NotFound` if none)."""
        return await self._send(_requests.latest(stream_id))

    async def frame(self, stream_id: str) -> bytes:
        """The stream's latest frame, encoded (JPEG); `NotFound` if none is recent."""
        return await self._send(_requests.frame(stream_id))

    async def history(
        self,
        stream_id: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        label: str | None = None,
        min_score: float | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> PredictionPage:
        """Past predictions, newest first; times in ms since epoch (start inclusive, end
        exclusive); pass the page's `next` as `cursor` for the following page."""
        call = _requests.history(
            stream_id, start_ms=start_ms, end_ms=end_ms, label=label, min_score=min_score,
            size=size, cursor=cursor,
        )  # fmt: skip
        return await self._send(call)

    async def search(
        self,
        q: str,
        *,
        k: int | None = None,
        stream_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        label: str | None = None,
        min_score: float | None = None,
    ) -> SearchResponse:
        """The `k` frames nearest to the text `q`, best first, with the history filters."""
        call = _requests.search(
            q, k=k, stream_id=stream_id, start_ms=start_ms, end_ms=end_ms, label=label,
            min_score=min_score,
        )  # fmt: skip
        return await self._send(call)

    async def search_similar(
        self,
        frame_id: str | None = None,
        image: bytes | None = None,
        *,
        filename: str = "image",
        k: int | None = None,
        stream_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        label: str | None = None,
        min_score: float | None = None,
    ) -> SearchResponse:
        """The `k` keyframes nearest to a stored frame (`frame_id`) or to an image (`image`,
        encoded bytes), best first, with the history filters; give exactly one of them."""
        call = _requests.search_similar(
            frame_id, image, filename=filename, k=k, stream_id=stream_id, start_ms=start_ms,
            end_ms=end_ms, label=label, min_score=min_score,
        )  # fmt: skip
        return await self._send(call)

    # -- labels ------------------------------------------------------------------------------

    async def labels(self) -> LabelSet:
        return await self._send(_requests.labels())

    async def set_labels(
        self, labels: Iterable[str], prompts: Mapping[str, list[str]] | None = None
    ) -> LabelSet:
        """Replace the label set (admin); the new head, with its version."""
        return await self._send(_requests.set_labels(labels, prompts))

    # -- events (the events app) ------------------------------------------------------------

    async def events(
        self,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        label: str | None = None,
        severity: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> EventPage:
        """Segments, alerts and stream up/down events, newest first by start (ms since epoch,
        start inclusive, end exclusive); pass the page's `next` as `cursor` for the next page."""
        call = _requests.events(
            stream_id=stream_id, type=type, label=label, severity=severity, start_ms=start_ms,
            end_ms=end_ms, size=size, cursor=cursor,
        )  # fmt: skip
        return await self._send(call)

    async def event_snapshot(self, event_id: str) -> bytes:
        """The event's snapshot (JPEG); `NotFound` naming why when there is none (no such
        event, `pending`, or the event's `evidence.missing` reason)."""
        return await self._send(_requests.event_snapshot(event_id))

    async def event_thumbnail(self, event_id: str) -> bytes:
        """The event's thumbnail (small JPEG); `NotFound` as for `event_snapshot`."""
        return await self._send(_requests.event_thumbnail(event_id))

    async def event_clip(
        self, event_id: str, start: int | None = None, end: int | None = None
    ) -> bytes:
        """The event's clip (MP4/WebM), or bytes `start`..`end` of it (inclusive; a range
        answer holds at most 1 MiB); `NotFound` as for `event_snapshot`."""
        return await self._send(_requests.event_clip(event_id, start, end))

    async def frame_thumbnail(self, frame_id: str) -> bytes:
        """The ~160 px JPEG thumbnail of a stored frame's keyframe (a search hit's
        `thumbnail`); `NotFound` when the frame is not in the history or has none."""
        return await self._send(_requests.frame_thumbnail(frame_id))

    async def stream_action(self, stream_id: str) -> StreamAction:
        """The stream's current smoothed action (`NotFound` if the events app has not seen it)."""
        return await self._send(_requests.stream_action(stream_id))

    async def stream_stats(self, stream_id: str) -> StreamStats:
        """Time per action over the last hour, by minute (`NotFound` before its first segment)."""
        return await self._send(_requests.stream_stats(stream_id))

    async def give_feedback(
        self,
        verdict: Verdict,
        *,
        frame_id: str | None = None,
        event_id: str | None = None,
        label: str | None = None,
        note: str | None = None,
    ) -> Feedback:
        """A verdict ("correct" / "wrong") on a frame or an event (its best frame); for "wrong",
        `label` is the right label (None: none of these). Needs a predict key (auth off: an
        admin key); `NotFound` for an unknown frame or event, `BadRequest` 422 for a bad label,
        `RateLimited` 429 when the key gives feedback too fast. Returns the stored verdict
        without its embedding."""
        return await self._send(
            _requests.give_feedback(
                verdict, frame_id=frame_id, event_id=event_id, label=label, note=note
            )
        )

    async def list_feedback(self, **filters: str | int | bool | None) -> FeedbackPage:
        """Verdicts newest first, each frame's latest (`all=True`: every one). Filters:
        stream_id, label ("none": none of these), verdict, by, since_ms, until_ms, frame_id,
        limit (at most 1000)."""
        return await self._send(_requests.list_feedback(**filters))

    async def feedback_counts(self, **filters: str | int | None) -> FeedbackCounts:
        """Counts of the frames' latest verdicts per stream and label, with the agreement."""
        return await self._send(_requests.feedback_counts(**filters))

    async def rules(self) -> RulesDoc:
        """The alert rules in force on harclip.control (`published` False: none yet)."""
        return await self._send(_requests.rules())

    async def set_rules(self, rules: Iterable[Mapping[str, Any]]) -> RulesDoc:
        """Replace the alert rules (admin); `BadRequest` 422 `invalid_rules` names the rule."""
        return await self._send(_requests.set_rules(rules))

    async def list_watches(self) -> WatchesDoc:
        """The watches in force (version 0 and none: nothing published yet)."""
        return await self._send(_requests.list_watches())

    async def get_watch(self, name: str) -> WatchInfo:
        """One watch in force (`NotFound` if there is none of that name)."""
        return await self._send(_requests.get_watch(name))

    async def put_watch(
        self, name: str, spec: WatchSpec | Mapping[str, Any], *, create: bool = False
    ) -> WatchInfo:
        """Add or replace a watch (admin; `create`: `BadRequest` 409 if it exists);
        `BadRequest` 422 `invalid_watch` names the field, `NotFound` an unknown example frame."""
        return await self._send(_requests.put_watch(name, spec, create))

    async def upload_watch_example(self, image: bytes, filename: str = "image") -> WatchExample:
        """Keep an example image in the history (admin); its `frame_id` goes in `examples`."""
        return await self._send(_requests.upload_watch_example(image, filename))

    async def delete_watch(self, name: str) -> WatchesDoc:
        """Remove a watch (admin); the watches now in force (`NotFound` if there was none)."""
        return await self._send(_requests.delete_watch(name))

    # -- WebSockets --------------------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str | None = None,
        *,
        after: str | Mapping[str, str] | None = None,
        max_reconnects: int = 10,
    ) -> Subscription[PredictionMessage]:
        """Live predictions of one stream (or all, with None), from after `after` (an entry id,
        or {stream: entry id} for all) or from now; reconnects and resumes by itself."""
        resumer = _Resumer(
            PredictionMessage, self.url, _requests.subscribe_path(stream_id), stream_id, after,
            max_reconnects,
        )  # fmt: skip
        return Subscription(resumer, auth_headers(self.api_key))

    def subscribe_events(
        self,
        stream_id: str | None = None,
        *,
        after: str | Mapping[str, str] | None = None,
        max_reconnects: int = 10,
    ) -> Subscription[EventMessage]:
        """Live events of the events app for one stream (or all, with None), from after `after`
        (as `subscribe`) or from now; reconnects and resumes by itself."""
        resumer = _Resumer(
            EventMessage,
            self.url,
            _requests.events_path(stream_id),
            stream_id,
            after,
            max_reconnects,
        )
        return Subscription(resumer, auth_headers(self.api_key))

    async def ingest(
        self,
        stream_id: str,
        frames: Iterable[bytes] | AsyncIterable[bytes],
        *,
        retry_for_s: float = _ingest.RETRY_FOR_S,
    ) -> list[Ack]:
        """Send encoded frames of `stream_id` over the ingest WebSocket; one `Ack` (frame_id,
        seq) each, once the server has published it to Kafka. A frame refused for a while (the
        key's rate limit: 429 with `retry_after`) is sent again after the server's wait, up to
        `retry_for_s` seconds a frame; another refusal raises its `ApiError` (with the status
        the server gave it)."""
        return await _ingest.ingest(
            self.url, auth_headers(self.api_key), stream_id, frames, retry_for_s
        )
