"""Feedback through the API on real Elasticsearch, Redis and the object store: verdicts on a
frame and on an event of the history, read back (the latest verdict of a frame wins, all are
kept), counted, the judged frame's JPEG in the object store; and the refusals (unknown frame or
event 404, bad label 422 naming `label`, read key 403, no embedding 409, flood 429)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from harclip.client import BadRequest, Forbidden, NotFound, RateLimited
from harclip.config import AuthSettings
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.io.keys import evidence_keys
from harclip.io.objects import ObjectStore
from harclip.messages import Event, Evidence, event_id
from harclip.model.bundle import Bundle
from tests.support.api import ADMIN_KEY, Serve, index_history, prediction, write_redis
from tests.support.scoped import Unique

ALICE = "hk_test-alice-predict-key"
READER = "hk_test-reader-key"


def _auth(**kw: object) -> AuthSettings:
    keys = {ADMIN_KEY: "admin", ALICE: {"role": "predict", "name": "alice"}, READER: "read"}
    return AuthSettings.model_validate({"enabled": True, "keys": keys, **kw})


@pytest.fixture
async def objects(unique: Unique) -> AsyncIterator[ObjectStore]:
    store = ObjectStore(unique.settings.objects)
    await store.start()
    yield store
    await store.close()


def _unit(dims: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return v / np.linalg.norm(v)


async def _write_event(unique: Unique, event: Event) -> None:
    s = unique.settings
    es = make_es(s.elasticsearch)
    try:
        await ensure_templates(es, s.elasticsearch)
        await search.index_events(es, s.elasticsearch, [event])
        await es.indices.refresh(index=s.elasticsearch.events_index)
    finally:
        await es.close()


async def test_feedback_on_frames_and_events(
    serve: Serve, unique: Unique, tiny_bundle: Path, objects: ObjectStore,
    sample_photos: list[Path],
) -> None:  # fmt: skip
    stream = unique.name("cam")
    dims = Bundle.load(tiny_bundle).manifest.embed_dim
    p1, p2, bare = (prediction(stream, i, "walking", 0.7) for i in range(3))
    v1 = _unit(dims, 1)
    extra = [search.Indexed(p2, None, p1.frame_id), search.Indexed(bare, None, bare.frame_id)]
    await index_history(unique.settings.elasticsearch, tiny_bundle, [(p1, v1)], extra)
    photo = sample_photos[0].read_bytes()
    await write_redis(unique, [p1, p2], photo)  # p2 is the stream's live frame

    async with serve(auth=_auth(), api_key=ALICE) as alice:
        right = await alice.give_feedback("correct", frame_id=p1.frame_id)
        assert (right.label, right.predicted, right.by, right.target) == (
            "walking", "walking", "alice", "frame")  # fmt: skip
        assert right.embedding is None  # not sent back
        assert right.image is None  # p1 is not the live frame and has no thumbnail

        new = await alice.give_feedback(
            "wrong", frame_id=p2.frame_id, label="riding a unicycle", note="on one wheel"
        )
        assert (new.label, new.new_label, new.predicted) == ("riding a unicycle", True, "walking")
        assert new.image is not None and new.image.startswith(f"feedback/{stream}/")
        stored = await objects.get(new.image)
        assert stored is not None and stored.data == photo

        none = await alice.give_feedback("wrong", frame_id=p1.frame_id)  # none of these
        assert none.label is None

        # the latest verdict of p1 wins; both are kept
        latest = await alice.list_feedback(frame_id=p1.frame_id)
        assert [f.feedback_id for f in latest.items] == [none.feedback_id]
        every = await alice.list_feedback(frame_id=p1.frame_id, all=True)
        assert [f.feedback_id for f in every.items] == [none.feedback_id, right.feedback_id]
        wrong = await alice.list_feedback(stream_id=stream, verdict="wrong")
        assert {f.feedback_id for f in wrong.items} == {none.feedback_id, new.feedback_id}
        assert (await alice.list_feedback(stream_id=stream, verdict="correct")).items == []
        nobody = await alice.list_feedback(stream_id=stream, label="none")
        assert [f.feedback_id for f in nobody.items] == [none.feedback_id]
        counts = await alice.feedback_counts(stream_id=stream)
        assert (counts.correct, counts.wrong, counts.agreement) == (0, 2, 0.0)
        served = await alice.feedback_counts(stream_id=stream, group="predicted")
        assert [(c.label, c.correct, c.wrong) for c in served.items] == [("walking", 0, 2)]

        # the stored embedding is the keyframe's (p2 stands behind keyframe p1)
        es = make_es(unique.settings.elasticsearch)
        try:
            doc = await es.get(
                index=unique.settings.elasticsearch.feedback_index, id=new.feedback_id
            )
        finally:
            await es.close()
        emb = np.asarray(doc["_source"]["embedding"], dtype=np.float32)
        assert emb.shape == (dims,)
        assert float(np.linalg.norm(emb)) == pytest.approx(1.0, abs=1e-4)
        assert float(emb @ v1) > 0.99  # int8 as stored, normalised again

        # an event: its best frame (at peak_at) is judged, its snapshot is the image
        keys = evidence_keys(stream, p1.captured_at, "ev")
        await objects.put(keys.snapshot, photo, "image/jpeg")
        ev = Event(
            event_id=event_id(stream, "segment.end", 0, None), type="segment.end",
            stream_id=stream, label="walking", start=p1.captured_at, peak_at=p1.captured_at,
            frames=3, evidence=Evidence(snapshot=keys.snapshot),
        )  # fmt: skip
        await _write_event(unique, ev)
        on_event = await alice.give_feedback("wrong", event_id=ev.event_id, label="running")
        assert (on_event.target, on_event.frame_id, on_event.event_id) == (
            "event", p1.frame_id, ev.event_id)  # fmt: skip
        assert (on_event.label, on_event.new_label) == ("running", False)
        assert on_event.image is not None and await objects.head(on_event.image) is not None

        # refusals
        with pytest.raises(NotFound) as nf:
            await alice.give_feedback("correct", frame_id="no-such-frame")
        assert "no-such-frame" in nf.value.message
        with pytest.raises(NotFound) as ne:
            await alice.give_feedback("correct", event_id="no-such-event")
        assert "no-such-event" in ne.value.message
        for label in (5, "x" * 65, "bad\x00label"):
            r = await alice._http.post(
                "/feedback", json={"frame_id": p1.frame_id, "verdict": "wrong", "label": label}
            )
            assert r.status_code == 422, label
            assert "label" in r.json()["error"]["message"]
        with pytest.raises(BadRequest) as bad:
            await alice.give_feedback("correct", frame_id=p1.frame_id, label="running")
        assert "label" in bad.value.message
        with pytest.raises(BadRequest) as gone:  # no keyframe embedding, no image at hand
            await alice.give_feedback("correct", frame_id=bare.frame_id)
        assert gone.value.status == 409 and gone.value.code == "no_embedding"

    async with serve(auth=_auth(), api_key=READER) as reader:
        with pytest.raises(Forbidden):
            await reader.give_feedback("correct", frame_id=p1.frame_id)
        assert len((await reader.list_feedback(stream_id=stream)).items) == 2  # p1, p2


async def test_a_flood_of_feedback_is_rate_limited(
    serve: Serve, unique: Unique, tiny_bundle: Path
) -> None:
    stream = unique.name("cam")
    p = prediction(stream, 0, "walking", 0.7)
    dims = Bundle.load(tiny_bundle).manifest.embed_dim
    await index_history(unique.settings.elasticsearch, tiny_bundle, [(p, _unit(dims, 2))])
    auth = _auth(feedback_burst=2, feedback_per_min=0.5)
    async with serve(auth=auth, api_key=ALICE) as alice:
        await alice.give_feedback("correct", frame_id=p.frame_id)
        await alice.give_feedback("wrong", frame_id=p.frame_id, label="running")
        with pytest.raises(RateLimited) as e:
            await alice.give_feedback("correct", frame_id=p.frame_id)
        assert e.value.retry_after is not None and e.value.retry_after >= 1
        async with serve(auth=auth, api_key=ADMIN_KEY) as admin:  # another key: its own bucket
            await admin.give_feedback("correct", frame_id=p.frame_id)
