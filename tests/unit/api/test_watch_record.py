"""The watches record is refused (422 naming the limit) when it would not fit a Kafka message."""

from __future__ import annotations

import pytest

from api.watches import _record
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.wire import ApiError


def test_a_set_over_the_message_size_is_refused_naming_the_limit() -> None:
    v = [0.5, 0.5, 0.5, 0.5]
    ws = WatchSet(version=1, embed_dim=4, watches=[
        Watch(spec=WatchSpec(name=f"w{i}", prompts=["p"]), version=1, positive=v, negatives=[v])
        for i in range(10)
    ])  # fmt: skip
    raw = _record(ws, 1 << 20)
    assert WatchSet.model_validate_json(raw) == ws
    with pytest.raises(ApiError) as e:
        _record(ws, len(raw) - 1)
    assert e.value.status == 422 and "HARCLIP_KAFKA__MAX_MESSAGE_BYTES" in e.value.message
