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
