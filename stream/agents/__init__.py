"""The events app's agents, one concern each, as plain objects: `apply(records)` does the work
and a `Checkpoint` (stream/checkpoint.py) does the reading, committing and revoking around it,
so a unit test drives an agent without Faust or Kafka."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from harclip.errors import MessageError
from harclip.messages import Event
from stream.continuity import Record

log = logging.getLogger("stream")


def parse_events(records: Iterable[Record]) -> list[Event]:
    """The events of harclip.events records; a malformed one is logged and left out."""
    out = []
    for r in records:
        try:
            out.append(Event.from_json(r.value or b""))
        except MessageError as e:
            log.warning("ignoring a malformed event on harclip.events: %s", e)
    return out
