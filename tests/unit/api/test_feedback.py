"""Feedback without services: the request's checks (a bad label is a 422 naming `label`), the
per-key feedback rate limit (429 with Retry-After), the latest verdict of a frame winning in
counts and filters, the object key of a judged frame's image and the online-accuracy metrics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.auth import Principal, TokenBucket
from api.feedback import FeedbackLimits
from api.metrics import ApiMetrics
from harclip.io.feedback import FeedbackFilter, tally
from harclip.io.keys import feedback_key
from harclip.messages.feedback import Feedback
from harclip.wire import ApiError
from harclip.wire.feedback import FeedbackRequest


@pytest.mark.parametrize(
    "label",
    [5, ["a"], {"x": 1}, "x" * 65, "walk\x00ing", "line\nbreak", "bell\x07", "", "tab\tbed"],
)
def test_a_bad_label_is_refused_naming_label(label: object) -> None:
    with pytest.raises(ValidationError) as e:
        FeedbackRequest.model_validate({"frame_id": "f1", "verdict": "wrong", "label": label})
    assert e.value.errors()[0]["loc"][0] == "label"


def test_a_good_request() -> None:
    r = FeedbackRequest.model_validate(
        {"event_id": "e1", "verdict": "wrong", "label": "riding a unicycle", "note": "ok"}
    )
    assert (r.event_id, r.label) == ("e1", "riding a unicycle")
    none = FeedbackRequest.model_validate({"frame_id": "f1", "verdict": "wrong"})
    assert none.label is None  # none of these


@pytest.mark.parametrize(
    "body",
    [
        {"verdict": "wrong"},
        {"frame_id": "f", "event_id": "e", "verdict": "wrong"},
        {"frame_id": "f", "verdict": "maybe"},
        {"frame_id": "f", "verdict": "correct", "extra": 1},
        {"frame_id": "f", "verdict": "correct", "note": "x" * 501},
    ],
)
def test_bad_requests(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate(body)


def _principal(name: str) -> Principal:
    return Principal("predict", name[:6] + "…", None, TokenBucket(10, 10), name)


def test_the_feedback_rate_is_limited_per_key() -> None:
    now = [0.0]
    limits = FeedbackLimits(per_min=6, burst=2, clock=lambda: now[0])
    alice, bob = _principal("alice"), _principal("bob")
    limits.take(alice)
    limits.take(alice)
    with pytest.raises(ApiError) as e:
        limits.take(alice)
    assert e.value.status == 429
    assert e.value.headers is not None and e.value.headers["Retry-After"] == "10"
    limits.take(bob)  # another key has its own bucket
    now[0] += 10.0  # 6 per minute: a token every 10 s
    limits.take(alice)


def _fb(i: int, frame: str, verdict: str, label: str | None, stream: str = "cam") -> Feedback:
    return Feedback.model_validate(
        {"feedback_id": f"fb{i}", "target": "frame", "frame_id": frame, "stream_id": stream,
         "verdict": verdict, "label": label, "predicted": "walking", "by": "op",
         "given_at": 1_000 + i}
    )  # fmt: skip


def test_counts_of_latest_verdicts() -> None:
    items = [_fb(3, "f1", "wrong", "running"), _fb(2, "f2", "correct", "walking"),
             _fb(1, "f3", "wrong", None, "door")]  # fmt: skip
    counts = tally(items)
    assert (counts.correct, counts.wrong) == (1, 2)
    assert counts.agreement == pytest.approx(1 / 3)
    rows = {(c.stream_id, c.label): (c.correct, c.wrong) for c in counts.items}
    assert rows == {("cam", "running"): (0, 1), ("cam", "walking"): (1, 0), ("door", None): (0, 1)}
    assert tally([]).agreement is None


def test_filters_judge_the_latest_verdict() -> None:
    latest = _fb(3, "f1", "correct", "walking")
    assert FeedbackFilter(verdict="correct").keeps(latest)
    assert not FeedbackFilter(verdict="wrong").keeps(latest)
    assert FeedbackFilter(label="walking").keeps(latest)
    assert not FeedbackFilter(label_none=True).keeps(latest)
    assert FeedbackFilter(label_none=True).keeps(_fb(4, "f2", "wrong", None))
    q = FeedbackFilter(stream_id="cam", since_ms=5, until_ms=9).query()["bool"]["filter"]
    assert {"term": {"stream_id": "cam"}} in q
    assert {"range": {"given_at": {"gte": 5, "lt": 9}}} in q


def test_feedback_key() -> None:
    key = feedback_key("lobby/1", 0, "01ABC")
    assert key == "feedback/lobby%2F1/1970-01-01/01ABC.jpg"


def test_online_accuracy_metrics() -> None:
    m = ApiMetrics()
    for verdict in ("correct", "correct", "wrong", "correct"):
        m.feedback.observe("cam", "walking", verdict)
    r = m.registry
    labels = {"stream": "cam", "label": "walking"}
    assert r.get_sample_value("harclip_feedback_agreement", labels) == 0.75
    wrong = r.get_sample_value("harclip_feedback_verdicts_total", {**labels, "verdict": "wrong"})
    assert wrong == 1.0


def test_a_key_may_be_named_and_the_name_is_who_gave_feedback() -> None:
    from api.auth import Authenticator
    from harclip.config import AuthSettings

    auth = Authenticator(
        AuthSettings.model_validate(
            {"enabled": True, "keys": {"hk_alice-key": {"role": "predict", "name": "alice"},
                                       "hk_bob-key": "predict"}}
        )
    )  # fmt: skip
    alice, bob = auth.identify("hk_alice-key"), auth.identify("hk_bob-key")
    assert alice is not None and alice.who == "alice"
    assert bob is not None and bob.who == "hk_bob…"  # never the whole key
    for bad in ("", "a b", "x" * 65, "<b>"):
        with pytest.raises(ValidationError):
            AuthSettings.model_validate({"keys": {"k": {"role": "read", "name": bad}}})


def test_counts_per_served_label_are_its_online_accuracy() -> None:
    items = [_fb(1, "f1", "correct", "walking"), _fb(2, "f2", "wrong", "running"),
             _fb(3, "f3", "wrong", None)]  # fmt: skip
    counts = tally(items, group="predicted")  # every one served "walking"
    assert counts.group == "predicted"
    assert [(c.label, c.correct, c.wrong) for c in counts.items] == [("walking", 1, 2)]


async def test_an_adapter_promotion_event_is_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment-wide `adapter.promoted` event judges no frame: 422 naming event_id."""
    from types import SimpleNamespace

    from api import feedback as route
    from harclip.config import Settings
    from harclip.io import evidence as ev_store
    from harclip.messages import AdapterChange, Event

    promoted = Event(event_id="p1", type="adapter.promoted", stream_id="*", start=1,
                     adapter=AdapterChange(reason="gate", version=2))  # fmt: skip

    async def find_event(es: object, s: object, event_id: str) -> Event:
        return promoted

    async def search_client() -> object:
        return object()

    monkeypatch.setattr(ev_store, "find_event", find_event)
    body = FeedbackRequest.model_validate({"event_id": "p1", "verdict": "correct"})
    clients = SimpleNamespace(search_client=search_client)
    with pytest.raises(ApiError) as e:
        await route._target(body, clients, Settings())  # type: ignore[arg-type]
    assert (
        e.value.status == 422 and "event_id" in str(e.value) and "adapter.promoted" in str(e.value)
    )
