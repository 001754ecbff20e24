"""Statistics: segments are cut at minute boundaries; a snapshot reads a window again only
after it was added to."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from harclip.messages import Event
from stream.stats import MINUTE_S, Stats, minute_pieces, stat_key


def test_minute_pieces_cut_at_minute_boundaries() -> None:
    m = 60_000
    assert minute_pieces(10 * m + 30_000, 10 * m + 40_000) == [(630.0, 10.0)]
    assert minute_pieces(10 * m + 50_000, 12 * m + 5_000) == [
        (650.0, 10.0), (660.0, 60.0), (720.0, 5.0)
    ]  # fmt: skip
    assert minute_pieces(5, 5) == []
    assert stat_key("cam", "running", "s") != stat_key("cam", "running", "n")


class _Windowed:
    """The shape of a Faust tumbling table the stats use, in memory, counting window reads:
    `relative_to(t)[key] += v` and `table[key][(start, end)]`."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, float], float] = {}
        self.reads = 0

    def relative_to(self, t: float) -> _Windowed._At:
        return _Windowed._At(self, math.floor(t / MINUTE_S) * MINUTE_S)

    def __getitem__(self, key: str) -> _Windowed._Key:
        return _Windowed._Key(self, key)

    class _At:
        def __init__(self, table: _Windowed, start: float) -> None:
            self.table, self.start = table, start

        def __getitem__(self, key: str) -> float:
            return self.table.values.get((key, self.start), 0.0)

        def __setitem__(self, key: str, value: float) -> None:
            self.table.values[key, self.start] = value

    class _Key:
        def __init__(self, table: _Windowed, key: str) -> None:
            self.table, self.key = table, key

        def __getitem__(self, rng: tuple[float, float]) -> float:
            self.table.reads += 1
            return self.table.values.get((self.key, rng[0]), 0.0)


class _App:
    def __init__(self) -> None:
        self.windowed = _Windowed()

    def Table(self, name: str, **kwargs: Any) -> Any:  # Faust's name
        if name == "stats-minute":
            return SimpleNamespace(tumbling=lambda size, expires: self.windowed)
        return {}


def _event(kind: str, label: str, start_s: float, end_s: float | None = None) -> Event:
    end = None if end_s is None else int(end_s * 1000)
    return Event(event_id=f"{kind}-{start_s}", type=kind, stream_id="cam", label=label,
                 start=int(start_s * 1000), end=end)  # fmt: skip


def test_a_snapshot_reads_again_only_the_windows_added_to_since_the_last() -> None:
    app = _App()
    stats = Stats(app, 7200)
    t0 = 1_000_000 * MINUTE_S  # a minute boundary
    for e in (_event("segment.start", "running", t0 + 10),
              _event("segment.end", "running", t0 + 10, t0 + 70),
              _event("segment.start", "fighting", t0 + 70)):  # fmt: skip
        stats.apply(e)
    first = stats.snapshot("cam", 0)
    assert first is not None
    assert first.hour.seconds == {"running": 60.0} and first.hour.segments == {
        "running": 1, "fighting": 1
    }  # fmt: skip
    full = app.windowed.reads  # 60 windows x 2 labels x 2 statistics
    assert full == 60 * 2 * 2
    assert stats.snapshot("cam", 0) == first and app.windowed.reads == full  # nothing re-read

    stats.apply(_event("segment.end", "fighting", t0 + 70, t0 + 75))  # adds to the newest window
    after = stats.snapshot("cam", 0)
    assert after is not None and after.hour.seconds == {"running": 60.0, "fighting": 5.0}
    assert app.windowed.reads == full + 2 * 2  # that window only

    stats.forget()  # partitions changed hands: everything is read again
    stats.apply(_event("segment.start", "running", t0 + 80))
    again = stats.snapshot("cam", 0)
    assert again is not None and again.hour.segments == {"running": 2, "fighting": 1}
    assert app.windowed.reads == full + 2 * 2 + full
