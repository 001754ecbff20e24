"""The alert body of the webhooks: the Event JSON plus the API's links to its evidence, and
with `webhook_thumbnail` the alert's thumbnail inline (or why it is not)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

from harclip.config import StreamSettings
from harclip.errors import ReadUnavailable
from harclip.messages import Event, Evidence, event_id
from stream.metrics import StreamMetrics
from stream.webhooks import Webhooks, alert_body


def test_alert_body_links_snapshot_and_clip_under_the_public_url() -> None:
    eid = event_id("cam 1", "alert", 7, "fight")
    alert = Event(event_id=eid, type="alert", stream_id="cam 1", label="fighting", start=1000,
                  rule="fight", severity="critical", emitted_at=2000)  # fmt: skip
    body = json.loads(alert_body(alert, "https://harclip.example.com/api/"))
    assert Event.model_validate({k: v for k, v in body.items() if not k.endswith("_url")}) == alert
    assert body["snapshot_url"] == f"https://harclip.example.com/api/events/{eid}/snapshot"
    assert body["clip_url"] == f"https://harclip.example.com/api/events/{eid}/clip"


# ---- inline thumbnails ---------------------------------------------------------------------

JPEG = b"\xff\xd8" + b"j" * 2000


class Thumbs:
    def __init__(self, objects: dict[str, bytes], fail: bool = False) -> None:
        self.objects, self.fail = objects, fail

    async def start(self) -> None:
        return None

    async def read(self, key: str) -> bytes | None:
        if self.fail:
            raise ReadUnavailable("object store at http://127.0.0.1:1: refused")
        return self.objects.get(key)

    async def close(self) -> None:
        return None


def hooks(
    thumbs: Thumbs, *, on: bool = True, wait_s: float = 5.0, max_bytes: int = 4096
) -> Webhooks:
    s = StreamSettings(
        webhooks=("https://hooks.example.com/a",), webhook_thumbnail=on,
        webhook_thumbnail_wait_s=wait_s, webhook_thumbnail_max_bytes=max_bytes,
    )  # fmt: skip
    return Webhooks(s, StreamMetrics(), "https://harclip.example.com", thumbnails=thumbs)


def fired(eid: str = "a1") -> Event:
    return Event(event_id=eid, type="alert", stream_id="cam", label="fighting", start=1000,
                 rule="fight", severity="critical", emitted_at=int(time.time() * 1000))  # fmt: skip


def copy_of(alert: Event, **evidence: object) -> Event:
    return alert.model_copy(update={"evidence": Evidence.model_validate(evidence)})


async def test_the_thumbnail_is_inline_once_the_evidence_copy_arrives() -> None:
    w = hooks(Thumbs({"evidence/cam/t.jpg": JPEG}))
    alert = fired()
    waiting = asyncio.create_task(w.body(alert))
    await asyncio.sleep(0)
    assert not waiting.done()  # waits for the evidence step's copy
    w.evidence(copy_of(alert, snapshot="evidence/cam/s.jpg", thumbnail="evidence/cam/t.jpg"))
    body = json.loads(await asyncio.wait_for(waiting, 5))
    assert base64.b64decode(body["thumbnail_jpeg"]) == JPEG
    assert "thumbnail_omitted" not in body
    assert body["snapshot_url"].startswith("https://harclip.example.com/events/")


async def test_a_thumbnail_not_there_in_time_is_pending() -> None:
    body = json.loads(await hooks(Thumbs({}), wait_s=0.05).body(fired()))
    assert body["thumbnail_omitted"] == "pending" and "thumbnail_jpeg" not in body


async def test_an_old_alert_does_not_wait() -> None:
    alert = fired().model_copy(update={"emitted_at": 1000})  # a replay: its wait passed long ago
    body = json.loads(await asyncio.wait_for(hooks(Thumbs({})).body(alert), 1))
    assert body["thumbnail_omitted"] == "pending"


async def test_too_large_missing_and_unavailable_thumbnails_are_left_out_with_the_reason() -> None:
    alert = fired()
    big = hooks(Thumbs({"t": JPEG}), max_bytes=1024)
    big.evidence(copy_of(alert, snapshot="s", thumbnail="t"))
    assert json.loads(await big.body(alert))["thumbnail_omitted"] == "too_large"
    gone = hooks(Thumbs({}))
    gone.evidence(copy_of(alert, missing="frames_expired"))
    assert json.loads(await gone.body(alert))["thumbnail_omitted"] == "frames_expired"
    down = hooks(Thumbs({"t": JPEG}, fail=True))
    down.evidence(copy_of(alert, snapshot="s", thumbnail="t"))
    assert json.loads(await down.body(alert))["thumbnail_omitted"] == "unavailable"


async def test_without_the_setting_the_body_has_no_thumbnail_and_does_not_wait() -> None:
    body = json.loads(await asyncio.wait_for(hooks(Thumbs({}), on=False).body(fired()), 1))
    assert "thumbnail_jpeg" not in body and "thumbnail_omitted" not in body


async def test_watch_events_go_to_the_watchs_own_urls_and_starts_also_to_the_configured() -> None:
    from harclip.config import StreamSettings
    from stream.metrics import StreamMetrics
    from stream.webhooks import Webhooks

    own = {"fall": ["https://hooks.example.com/fall"]}
    s = StreamSettings(webhooks=["https://hooks.example.com/all"])
    hooks = Webhooks(s, StreamMetrics(), watch_urls=lambda name: own.get(name or "", []))
    routed: list[tuple[str, str]] = []

    async def record(url: str, queue: object) -> None:
        return None

    hooks._run = record  # type: ignore[method-assign]  # no deliveries: only the routing
    await hooks.start()
    try:
        for i, kind in enumerate(["alert", "watch.start", "watch.end", "segment.start"]):
            e = Event(event_id=f"e{i}", type=kind, stream_id="cam",
                      watch="fall" if kind.startswith("watch.") else None)  # fmt: skip
            hooks.offer(e)
        for url, q in hooks._queues.items():
            while not q.empty():
                routed.append((url.rsplit("/", 1)[1], q.get_nowait().type))
    finally:
        await hooks.stop()
    assert sorted(routed) == [("all", "alert"), ("all", "watch.start"),
                              ("fall", "watch.end"), ("fall", "watch.start")]  # fmt: skip
