"""WatchScorer: the batched scores equal the per-watch rule of harclip.watches.spec."""

from __future__ import annotations

import numpy as np

from harclip.watches import SCORE_FLOOR, Watch, WatchSet, WatchSpec
from harclip.watches.scoring import StreamWindows, WatchScorer

RNG = np.random.default_rng(7)
D = 8


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)  # type: ignore[no-any-return]


def _watch(name: str, pos: np.ndarray, negs: np.ndarray, **spec: object) -> Watch:
    s = WatchSpec(name=name, prompts=["p"], **spec)  # type: ignore[arg-type]
    return Watch(spec=s, version=1, positive=pos.tolist(), negatives=negs.tolist())


def _reference(w: Watch, x: np.ndarray, scale: float) -> float:
    logits = scale * np.array([np.dot(w.positive, x), *(np.dot(n, x) for n in w.negatives)])
    e = np.exp(logits - logits.max())
    return float(e[0] / e.sum())


def test_scores_follow_the_softmax_rule_for_every_watch() -> None:
    shared = _unit(RNG.normal(size=(2, D)))
    watches = [
        _watch(f"w{i}", _unit(RNG.normal(size=D)),
               shared if i % 2 else _unit(RNG.normal(size=(1 + i % 3, D))))
        for i in range(9)
    ]  # fmt: skip
    ws = WatchSet(version=3, embed_dim=D, watches=watches)
    scorer = WatchScorer(ws, logit_scale=10.0)
    emb = _unit(RNG.normal(size=(5, D)))
    got = scorer.score(emb, ["cam"] * 5)
    for row, x in zip(got, emb, strict=True):
        want = {w.spec.name: _reference(w, x, 10.0) for w in watches}
        assert row == {k: v for k, v in row.items() if want[k] >= SCORE_FLOOR}
        assert set(row) == {k for k, v in want.items() if v >= SCORE_FLOOR}
        for k, v in row.items():
            assert abs(v - want[k]) < 1e-5


def test_only_the_watches_of_the_stream_and_above_the_floor() -> None:
    x = _unit(np.eye(D)[0])
    hit = _watch("door", x, _unit(np.eye(D)[1:2]), streams=["door-*"])
    miss = _watch("yard", x, _unit(np.eye(D)[1:2]), streams=["yard"])
    low = _watch("low", _unit(np.eye(D)[1]), x[None], streams=["*"])
    scorer = WatchScorer(WatchSet(version=1, embed_dim=D, watches=[hit, miss, low]), 100.0)
    out = scorer.score(np.stack([x, x]), ["door-1", "yard"])
    assert set(out[0]) == {"door"} and out[0]["door"] > 0.99
    assert set(out[1]) == {"yard"}
    assert scorer.applies("door-2") == ["door", "low"] and scorer.score(x[None], ["x"]) == [{}]


def test_no_watches_and_no_matching_stream_cost_nothing() -> None:
    emb = _unit(RNG.normal(size=(3, D)))
    assert WatchScorer(WatchSet(version=0, embed_dim=D), 100.0).score(emb, "abc") == [{}, {}, {}]
    w = _watch("a", emb[0], emb[1:2], streams=["nowhere"])
    assert WatchScorer(WatchSet(version=1, embed_dim=D, watches=[w]), 1.0).score(emb, "abc") == [
        {}, {}, {}]  # fmt: skip


def test_window_mean_pools_the_last_frames_of_each_stream() -> None:
    pos, neg = _unit(RNG.normal(size=D)), _unit(RNG.normal(size=(1, D)))
    w3 = _watch("w3", pos, neg, window=3)
    w1 = _watch("w1", pos, neg)
    scorer = WatchScorer(WatchSet(version=1, embed_dim=D, watches=[w3, w1]), 1.0)
    frames = _unit(RNG.normal(size=(6, D)))
    streams = ["a", "b", "a", "a", "b", "a"]
    seen: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    out = scorer.score(frames[:4], streams[:4]) + scorer.score(frames[4:], streams[4:])
    for x, sid, row in zip(frames, streams, out, strict=True):
        seen[sid].append(x)
        pooled = _unit(np.mean(seen[sid][-3:], axis=0))
        assert abs(row["w3"] - _reference(w3, pooled, 1.0)) < 1e-5
        assert abs(row["w1"] - _reference(w1, x, 1.0)) < 1e-5
    # a new set keeps the streams' recent frames
    again = WatchScorer(WatchSet(version=2, embed_dim=D, watches=[w3]), 1.0, scorer.windows)
    (row,) = again.score(frames[:1], ["a"])
    pooled = _unit(np.mean([seen["a"][-2], seen["a"][-1], frames[0]], axis=0))
    assert abs(row["w3"] - _reference(w3, pooled, 1.0)) < 1e-5


def test_stream_windows_are_bounded_and_grow() -> None:
    windows = StreamWindows(D, max_streams=2)
    for sid in ("a", "b", "c"):
        windows.push(sid, np.ones(D, dtype=np.float32), 2)
    assert len(windows) == 2
    x = _unit(RNG.normal(size=(3, D)))
    windows.push("c", x[0], 4)  # grows, keeps what it had
    windows.push("c", x[1], 4)
    np.testing.assert_allclose(windows.pooled("c", 4), _unit(np.ones(D) + x[0] + x[1]), atol=1e-5)
