"""`Client`: the blocking face of the harclip API client, with the same methods as `AsyncClient`
(same `Call`s from `harclip.client._requests`, same `harclip.wire` returns). WebSockets run on
websockets' blocking client: no event loop, so it also works inside a running one's thread."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from harclip.client import _ingest, _requests
from harclip.client._requests import Call, auth_headers
from harclip.client.errors import ConnectionFailed
from harclip.client.subscription import SyncSubscription, _Resumer
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


class Client:
    """Blocking client of the harclip API at `url`; see `AsyncClient` for each method."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._http = httpx.Client(
            base_url=self.url, headers=auth_headers(api_key), timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def ws_url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return _requests.ws_url(self.url, path, query)

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.send(call.build(self._http))
        except httpx.TransportError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e!r}") from None
        return call.answer(response)

    # -- predict -----------------------------------------------------------------------------

    def predict_bytes(
        self, data: bytes, filename: str = "image", top_k: int | None = None
    ) -> PredictResponse:
        return self._send(_requests.predict_bytes(data, filename, top_k))

    def predict_from_image_path(
        self, path: str | Path, top_k: int | None = None
    ) -> PredictResponse:
        return self._send(_requests.predict_from_image_path(path, top_k))

    def predict_from_image_url(self, url: str, top_k: int | None = None) -> PredictResponse:
        return self._send(_requests.predict_from_image_url(url, top_k))

    def predict_base64(self, data: bytes, top_k: int | None = None) -> PredictResponse:
        return self._send(_requests.predict_base64(data, top_k))

    # -- reads -------------------------------------------------------------------------------

    def info(self) -> ServiceInfo:
        return self._send(_requests.info())

    def streams(self, *, since_ms: int | None = None, limit: int | None = None) -> StreamList:
        return self._send(_requests.streams(since_ms=since_ms, limit=limit))

    def latest(self, stream_id: str) -> Prediction:
        return self._send(_requests.latest(stream_id))

    def frame(self, stream_id: str) -> bytes:
        return self._send(_requests.frame(stream_id))

    def history(
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
        return self._send(
            _requests.history(
                stream_id, start_ms=start_ms, end_ms=end_ms, label=label, min_score=min_score,
                size=size, cursor=cursor,
            )
        )  # fmt: skip

    def search(
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
        return self._send(
            _requests.search(
                q, k=k, stream_id=stream_id, start_ms=start_ms, end_ms=end_ms, label=label,
                min_score=min_score,
            )
        )  # fmt: skip

    def search_similar(
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
        return self._send(call)

    # -- labels ------------------------------------------------------------------------------

    def labels(self) -> LabelSet:
        return self._send(_requests.labels())

    def set_labels(
        self, labels: Iterable[str], prompts: Mapping[str, list[str]] | None = None
    ) -> LabelSet:
        return self._send(_requests.set_labels(labels, prompts))

    # -- events (the events app) ------------------------------------------------------------

    def events(
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
        return self._send(call)

    def event_snapshot(self, event_id: str) -> bytes:
        """The event's snapshot (JPEG); `NotFound` naming why when there is none (no such
        event, `pending`, or the event's `evidence.missing` reason)."""
        return self._send(_requests.event_snapshot(event_id))

    def event_thumbnail(self, event_id: str) -> bytes:
        """The event's thumbnail (small JPEG); `NotFound` as for `event_snapshot`."""
        return self._send(_requests.event_thumbnail(event_id))

    def event_clip(self, event_id: str, start: int | None = None, end: int | None = None) -> bytes:
        """The event's clip (MP4/WebM), or bytes `start`..`end` of it (inclusive; a range
        answer holds at most 1 MiB); `NotFound` as for `event_snapshot`."""
        return self._send(_requests.event_clip(event_id, start, end))

    def frame_thumbnail(self, frame_id: str) -> bytes:
        """The ~160 px JPEG thumbnail of a stored frame's keyframe (a search hit's
        `thumbnail`); `NotFound` when the frame is not in the history or has none."""
        return self._send(_requests.frame_thumbnail(frame_id))

    def stream_action(self, stream_id: str) -> StreamAction:
        """The stream's current smoothed action (`NotFound` if the events app has not seen it)."""
        return self._send(_requests.stream_action(stream_id))

    def stream_stats(self, stream_id: str) -> StreamStats:
        """Time per action over the last hour, by minute (`NotFound` before its first segment)."""
        return self._send(_requests.stream_stats(stream_id))

    def give_feedback(
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
        return self._send(
            _requests.give_feedback(
                verdict, frame_id=frame_id, event_id=event_id, label=label, note=note
            )
        )

    def list_feedback(self, **filters: str | int | bool | None) -> FeedbackPage:
        """Verdicts newest first, each frame's latest (`all=True`: every one). Filters:
        stream_id, label ("none": none of these), verdict, by, since_ms, until_ms, frame_id,
        limit (at most 1000)."""
        return self._send(_requests.list_feedback(**filters))

    def feedback_counts(self, **filters: str | int | None) -> FeedbackCounts:
        """Counts of the frames' latest verdicts per stream and label, with the agreement."""
        return self._send(_requests.feedback_counts(**filters))

    def rules(self) -> RulesDoc:
        """The alert rules in force on harclip.control (`published` False: none yet)."""
        return self._send(_requests.rules())

    def set_rules(self, rules: Iterable[Mapping[str, Any]]) -> RulesDoc:
        """Replace the alert rules (admin); `BadRequest` 422 `invalid_rules` names the rule."""
        return self._send(_requests.set_rules(rules))

    def list_watches(self) -> WatchesDoc:
        """The watches in force (version 0 and none: nothing published yet)."""
        return self._send(_requests.list_watches())

    def get_watch(self, name: str) -> WatchInfo:
        """One watch in force (`NotFound` if there is none of that name)."""
        return self._send(_requests.get_watch(name))

    def put_watch(
        self, name: str, spec: WatchSpec | Mapping[str, Any], *, create: bool = False
    ) -> WatchInfo:
        """Add or replace a watch (admin; `create`: `BadRequest` 409 if it exists);
        `BadRequest` 422 `invalid_watch` names the field, `NotFound` an unknown example frame."""
        return self._send(_requests.put_watch(name, spec, create))

    def upload_watch_example(self, image: bytes, filename: str = "image") -> WatchExample:
        """Keep an example image in the history (admin); its `frame_id` goes in `examples`."""
        return self._send(_requests.upload_watch_example(image, filename))

    def delete_watch(self, name: str) -> WatchesDoc:
        """Remove a watch (admin); the watches now in force (`NotFound` if there was none)."""
        return self._send(_requests.delete_watch(name))

    # -- WebSockets --------------------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str | None = None,
        *,
        after: str | Mapping[str, str] | None = None,
        max_reconnects: int = 10,
    ) -> SyncSubscription[PredictionMessage]:
        """A blocking iterator of live predictions; see `AsyncClient.subscribe`."""
        resumer = _Resumer(
            PredictionMessage, self.url, _requests.subscribe_path(stream_id), stream_id, after,
            max_reconnects,
        )  # fmt: skip
        return SyncSubscription(resumer, auth_headers(self.api_key))

    def subscribe_events(
        self,
        stream_id: str | None = None,
        *,
        after: str | Mapping[str, str] | None = None,
        max_reconnects: int = 10,
    ) -> SyncSubscription[EventMessage]:
        """A blocking iterator of live events; see `AsyncClient.subscribe_events`."""
        resumer = _Resumer(
            EventMessage,
            self.url,
            _requests.events_path(stream_id),
            stream_id,
            after,
            max_reconnects,
        )
        return SyncSubscription(resumer, auth_headers(self.api_key))

    def ingest(
        self, stream_id: str, frames: Iterable[bytes], *, retry_for_s: float = _ingest.RETRY_FOR_S
    ) -> list[Ack]:
        return _ingest.ingest_sync(
            self.url, auth_headers(self.api_key), stream_id, frames, retry_for_s
        )
