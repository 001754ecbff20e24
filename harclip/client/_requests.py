"""The one request builder of both client faces: every API call is a `Call` (method, path, query,
body, and how to read the answer into its `harclip.wire` type) made by one function here; the
sync and the async client only send it. A new endpoint is one function here and one line per face.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, RootModel

from harclip.client.errors import error_for, typed_error
from harclip.ids import STREAM_ID_RULE, stream_id_problem
from harclip.messages import StreamAction, StreamStats
from harclip.messages.feedback import Feedback, Verdict
from harclip.wire import (
    EventPage,
    FeedbackCounts,
    FeedbackPage,
    FeedbackRequest,
    LabelSet,
    LabelSetRequest,
    Prediction,
    PredictionPage,
    PredictManyResponse,
    PredictRequest,
    PredictResponse,
    RulesDoc,
    RulesRequest,
    SearchResponse,
    ServiceInfo,
    StreamList,
    frame_thumbnail_path,
)
from harclip.wire.watches import WatchesDoc, WatchExample, WatchInfo

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Query = dict[str, str | int | float]
Reader = Callable[[httpx.Response], T]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request of the API and the reader of its answer."""

    method: str
    path: str
    read: Reader[T]
    params: Query = field(default_factory=dict)
    body: BaseModel | None = None  # sent as JSON
    files: dict[str, tuple[str, bytes]] | None = None  # multipart
    headers: dict[str, str] | None = None

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        content = None if self.body is None else self.body.model_dump_json(exclude_none=True)
        headers = dict(self.headers or {})
        if content is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            content=content,
            headers=headers or None,
            files=self.files,
        )

    def answer(self, response: httpx.Response) -> T:
        """The typed answer; the `ApiError` subclass of its status for an error answer."""
        if response.status_code >= 400:
            raise error_for(response.status_code, response.content, response.headers)
        return self.read(response)


def _model(cls: type[M]) -> Reader[M]:
    def read(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content)

    return read


def _first_result(response: httpx.Response) -> PredictResponse:
    return PredictManyResponse.model_validate_json(response.content).results[0]


def _content(response: httpx.Response) -> bytes:
    return response.content


def _query(**params: str | int | float | None) -> Query:
    return {k: v for k, v in params.items() if v is not None}


def _segment(stream_id: str) -> str:
    """A stream id as one path segment, percent-encoded; a segment of only dots (`.`, `..`) as
    %2E so that no URL normalisation reads it as "this" or "the parent" folder. An invalid id
    (`harclip.ids`) is refused here with the server's 422 `invalid_stream_id`: an id with a '/'
    cannot be one segment."""
    problem = stream_id_problem(stream_id)
    if problem is not None:
        message = f"stream id {stream_id[:140]!r} {problem}: it must be {STREAM_ID_RULE}"
        raise typed_error(422, "invalid_stream_id", message)
    if set(stream_id) == {"."}:
        return "%2E" * len(stream_id)
    return quote(stream_id, safe="")


# -- predict -----------------------------------------------------------------------------------
# Request bodies are built without validation (`model_construct`): the server is the one judge
# of input, so a bad value is the same `BadRequest` (422) from either face.


def predict_bytes(
    data: bytes, filename: str = "image", top_k: int | None = None
) -> Call[PredictResponse]:
    return Call(
        "POST",
        "/predict/image",
        _first_result,
        params=_query(top_k=top_k),
        files={"files": (filename, data)},
    )


def predict_from_image_path(path: str | Path, top_k: int | None = None) -> Call[PredictResponse]:
    p = Path(path)
    return predict_bytes(p.read_bytes(), p.name, top_k)


def predict_from_image_url(url: str, top_k: int | None = None) -> Call[PredictResponse]:
    body = PredictRequest.model_construct(image_url=url, top_k=top_k)
    return Call("POST", "/predict", _model(PredictResponse), body=body)


def predict_base64(data: bytes, top_k: int | None = None) -> Call[PredictResponse]:
    body = PredictRequest.model_construct(image=base64.b64encode(data).decode(), top_k=top_k)
    return Call("POST", "/predict", _model(PredictResponse), body=body)


# -- reads -------------------------------------------------------------------------------------


def info() -> Call[ServiceInfo]:
    return Call("GET", "/", _model(ServiceInfo))


def streams(*, since_ms: int | None = None, limit: int | None = None) -> Call[StreamList]:
    return Call(
        "GET", "/streams", _model(StreamList), params=_query(since_ms=since_ms, limit=limit)
    )


def latest(stream_id: str) -> Call[Prediction]:
    return Call("GET", f"/streams/{_segment(stream_id)}/latest", _model(Prediction))


def frame(stream_id: str) -> Call[bytes]:
    return Call("GET", f"/streams/{_segment(stream_id)}/frame", _content)


def history(
    stream_id: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    label: str | None = None,
    min_score: float | None = None,
    size: int | None = None,
    cursor: str | None = None,
) -> Call[PredictionPage]:
    params = _query(
        start_ms=start_ms, end_ms=end_ms, label=label, min_score=min_score, size=size, cursor=cursor
    )
    return Call(
        "GET", f"/streams/{_segment(stream_id)}/history", _model(PredictionPage), params=params
    )


def search(
    q: str,
    *,
    k: int | None = None,
    stream_id: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    label: str | None = None,
    min_score: float | None = None,
) -> Call[SearchResponse]:
    params = _query(
        q=q, k=k, stream_id=stream_id, start_ms=start_ms, end_ms=end_ms, label=label,
        min_score=min_score,
    )  # fmt: skip
    return Call("GET", "/search", _model(SearchResponse), params=params)


def search_similar(
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
) -> Call[SearchResponse]:
    params = _query(
        frame_id=frame_id, k=k, stream_id=stream_id, start_ms=start_ms, end_ms=end_ms,
        label=label, min_score=min_score,
    )  # fmt: skip
    files = None if image is None else {"file": (filename, image)}
    return Call("POST", "/search/similar", _model(SearchResponse), params=params, files=files)


# -- labels ------------------------------------------------------------------------------------


def labels() -> Call[LabelSet]:
    return Call("GET", "/labels", _model(LabelSet))


def set_labels(
    names: Iterable[str], prompts: Mapping[str, list[str]] | None = None
) -> Call[LabelSet]:
    body = LabelSetRequest.model_construct(labels=list(names), prompts=dict(prompts or {}))
    return Call("PUT", "/labels", _model(LabelSet), body=body)


# -- events ------------------------------------------------------------------------------------


def events(
    *,
    stream_id: str | None = None,
    type: str | None = None,
    label: str | None = None,
    severity: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    size: int | None = None,
    cursor: str | None = None,
) -> Call[EventPage]:
    params = _query(
        stream_id=stream_id, type=type, label=label, severity=severity, start_ms=start_ms,
        end_ms=end_ms, size=size, cursor=cursor,
    )  # fmt: skip
    return Call("GET", "/events", _model(EventPage), params=params)


def _event_path(event_id: str, kind: str) -> str:
    return f"/events/{quote(event_id, safe='') or '%20'}/{kind}"


def event_snapshot(event_id: str) -> Call[bytes]:
    return Call("GET", _event_path(event_id, "snapshot"), _content)


def event_thumbnail(event_id: str) -> Call[bytes]:
    return Call("GET", _event_path(event_id, "thumbnail"), _content)


def event_clip(event_id: str, start: int | None = None, end: int | None = None) -> Call[bytes]:
    """The clip, or bytes `start`..`end` of it (inclusive; `end` None: to the end, at most the
    server's range answer size, 1 MiB; `start` None with `end`: the last `end` bytes)."""
    if start is None and end is None:
        return Call("GET", _event_path(event_id, "clip"), _content)
    span = f"-{end}" if start is None else f"{start}-{'' if end is None else end}"
    return Call("GET", _event_path(event_id, "clip"), _content, headers={"Range": f"bytes={span}"})


def frame_thumbnail(frame_id: str) -> Call[bytes]:
    return Call("GET", frame_thumbnail_path(frame_id), _content)


def stream_action(stream_id: str) -> Call[StreamAction]:
    return Call("GET", f"/streams/{_segment(stream_id)}/action", _model(StreamAction))


def stream_stats(stream_id: str) -> Call[StreamStats]:
    return Call("GET", f"/streams/{_segment(stream_id)}/stats", _model(StreamStats))


def rules() -> Call[RulesDoc]:
    return Call("GET", "/rules", _model(RulesDoc))


def set_rules(items: Iterable[Mapping[str, Any]]) -> Call[RulesDoc]:
    body = RulesRequest.model_construct(rules=[dict(r) for r in items])
    return Call("PUT", "/rules", _model(RulesDoc), body=body)


# -- feedback ----------------------------------------------------------------------------------


def give_feedback(
    verdict: Verdict,
    *,
    frame_id: str | None = None,
    event_id: str | None = None,
    label: str | None = None,
    note: str | None = None,
) -> Call[Feedback]:
    body = FeedbackRequest.model_construct(
        frame_id=frame_id, event_id=event_id, verdict=verdict, label=label, note=note
    )
    return Call("POST", "/feedback", _model(Feedback), body=body)


def list_feedback(**filters: str | int | bool | None) -> Call[FeedbackPage]:
    """`filters`: stream_id, label ("none": none of these), verdict, by, since_ms, until_ms,
    frame_id, all, limit."""
    params = _query(**{k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()})
    return Call("GET", "/feedback", _model(FeedbackPage), params=params)


def feedback_counts(**filters: str | int | None) -> Call[FeedbackCounts]:
    return Call("GET", "/feedback/counts", _model(FeedbackCounts), params=_query(**filters))


def list_watches() -> Call[WatchesDoc]:
    return Call("GET", "/watches", _model(WatchesDoc))


def get_watch(name: str) -> Call[WatchInfo]:
    return Call("GET", f"/watches/{quote(name, safe='')}", _model(WatchInfo))


class _JsonBody(RootModel[dict[str, Any]]):
    """A JSON object sent as it is (the server judges it)."""


def put_watch(name: str, spec: Mapping[str, Any] | BaseModel, create: bool) -> Call[WatchInfo]:
    doc = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)
    path = f"/watches/{quote(name, safe='')}"
    params: Query = {"create": "true"} if create else {}
    return Call("PUT", path, _model(WatchInfo), params=params, body=_JsonBody(doc))


def upload_watch_example(image: bytes, filename: str) -> Call[WatchExample]:
    files = {"file": (filename, image)}
    return Call("POST", "/watches/examples", _model(WatchExample), files=files)


def delete_watch(name: str) -> Call[WatchesDoc]:
    return Call("DELETE", f"/watches/{quote(name, safe='')}", _model(WatchesDoc))


# -- WebSockets --------------------------------------------------------------------------------


def ws_url(base: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """The ws:// (or wss:// for https) URL of `path` under the API at `base`."""
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + path, urlencode(query or {}), ""))


def subscribe_path(stream_id: str | None) -> str:
    return f"/ws/streams/{_segment(stream_id)}" if stream_id else "/ws/streams"


def events_path(stream_id: str | None) -> str:
    return f"/ws/events/{_segment(stream_id)}" if stream_id else "/ws/events"


def ingest_path(stream_id: str) -> str:
    return f"/ws/ingest/{_segment(stream_id)}"


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}
