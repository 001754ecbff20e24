"""Statistics helpers: segments are cut at minute boundaries."""

from __future__ import annotations

from stream.stats import minute_pieces, stat_key


def test_minute_pieces_cut_at_minute_boundaries() -> None:
    m = 60_000
    assert minute_pieces(10 * m + 30_000, 10 * m + 40_000) == [(630.0, 10.0)]
    assert minute_pieces(10 * m + 50_000, 12 * m + 5_000) == [
        (650.0, 10.0), (660.0, 60.0), (720.0, 5.0)
    ]  # fmt: skip
    assert minute_pieces(5, 5) == []
    assert stat_key("cam", "running", "s") != stat_key("cam", "running", "n")
