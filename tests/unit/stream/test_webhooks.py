"""The alert body of the webhooks: the Event JSON plus the API's links to its evidence."""

from __future__ import annotations

import json

from harclip.messages import Event, event_id
from stream.webhooks import alert_body


def test_alert_body_links_snapshot_and_clip_under_the_public_url() -> None:
    eid = event_id("cam 1", "alert", 7, "fight")
    alert = Event(event_id=eid, type="alert", stream_id="cam 1", label="fighting", start=1000,
                  rule="fight", severity="critical", emitted_at=2000)  # fmt: skip
    body = json.loads(alert_body(alert, "https://harclip.example.com/api/"))
    assert Event.model_validate({k: v for k, v in body.items() if not k.endswith("_url")}) == alert
    assert body["snapshot_url"] == f"https://harclip.example.com/api/events/{eid}/snapshot"
    assert body["clip_url"] == f"https://harclip.example.com/api/events/{eid}/clip"


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
