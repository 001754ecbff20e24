"""The `watches` agent's wiring (stream/agents/watches.py): its table, its checkpoint on the
predictions topic (with the idle ticks, like `track`) and its reassignment hooks, kept out of
stream/application.py (a registration table)."""

from __future__ import annotations

from typing import Any, cast

import faust

from stream.agents.watches import WatchesAgent
from stream.checkpoint import Checkpoint, Pace
from stream.continuity import Positions
from stream.runtime import Runtime


def watches_checkpoint(app: faust.App, rt: Runtime, positions: Positions, send: Any) -> Checkpoint:
    """The `watches` table and agent, in a checkpoint paced like `track`'s."""
    s = rt.settings.stream
    table = app.Table("watches", key_type=bytes, value_type=bytes,
                      help="per (stream, watch) calibration and firing")  # fmt: skip
    agent = WatchesAgent(rt.watches, table, send, rt.metrics.events, rt.ticks_topic,
                         int(s.idle_timeout_s * 1000))  # fmt: skip
    pace = Pace(s.track_batch, min(0.25, s.commit_interval_s / 4), s.track_wait_ms / 1000)

    async def reassigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        agent.reassigned()

    app.on_partitions_revoked.connect(cast(Any, reassigned))
    app.on_partitions_assigned.connect(cast(Any, reassigned))
    return Checkpoint(agent, positions, app, pace, unchecked={rt.ticks_topic})
