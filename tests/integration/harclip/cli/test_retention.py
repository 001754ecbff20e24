"""`harclip retention apply` on the real S3 server: evidence objects of the events' expired days
and keyframe thumbnails of the predictions' expired days go, those of kept days and keys that
are neither stay; `retention lifecycle` prints the same as S3 lifecycle rules."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import pytest

from harclip.cli import retention
from harclip.io.keys import evidence_keys, thumb_key
from harclip.io.objects import ObjectStore
from tests.support.scoped import Unique

DAY_MS = 86_400_000
TODAY = dt.date(2026, 3, 31)
NOW_MS = int(dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC).timestamp() * 1000)


async def test_apply_deletes_the_evidence_of_expired_days(unique: Unique) -> None:
    s = unique.settings
    keep = s.elasticsearch.events_retention_days
    old = evidence_keys("cam/1", NOW_MS - keep * DAY_MS, "e-old")
    kept = evidence_keys("cam/1", NOW_MS - (keep - 1) * DAY_MS, "e-kept")
    store = ObjectStore(s.objects)
    await store.start()
    try:
        for k in (old.snapshot, old.clip_for("webm"), kept.snapshot, "evidence/readme.txt"):
            await store.put(k, b"x", "application/octet-stream")
        args = argparse.Namespace(action="apply", dry_run=True, today=TODAY)
        assert await retention._run(args, s) == 0
        assert len(await store.list("evidence/")) == 4  # a dry run deletes nothing
        args.dry_run = False
        assert await retention._run(args, s) == 0
        left = sorted(o.key for o in await store.list("evidence/"))
        assert left == sorted([kept.snapshot, "evidence/readme.txt"])
    finally:
        await store.close()


async def test_apply_deletes_the_keyframe_thumbnails_of_expired_prediction_days(
    unique: Unique, capsys: pytest.CaptureFixture[str]
) -> None:
    s = unique.settings
    keep = s.elasticsearch.predictions_retention_days
    assert keep < s.elasticsearch.events_retention_days  # thumbnails go before evidence
    old = thumb_key("cam/1", NOW_MS - keep * DAY_MS, "f-old")
    kept = thumb_key("cam/1", NOW_MS - (keep - 1) * DAY_MS, "f-kept")
    evidence = evidence_keys("cam/1", NOW_MS - keep * DAY_MS, "e-same-day").snapshot
    store = ObjectStore(s.objects)
    await store.start()
    try:
        for k in (old, kept, evidence, "thumbs/readme.txt"):
            await store.put(k, b"x", "image/jpeg")
        args = argparse.Namespace(action="apply", dry_run=True, today=TODAY)
        assert await retention._run(args, s) == 0
        assert len(await store.list("thumbs/")) == 3  # a dry run deletes nothing
        args.dry_run = False
        assert await retention._run(args, s) == 0
        assert "deleted 1 keyframe thumbnails" in capsys.readouterr().out
        assert sorted(o.key for o in await store.list("thumbs/")) == [kept, "thumbs/readme.txt"]
        assert [o.key for o in await store.list("evidence/")] == [evidence]  # events keep it
    finally:
        await store.delete([kept, evidence, "thumbs/readme.txt"])
        await store.close()


async def test_lifecycle_prints_one_rule_per_prefix(
    unique: Unique, capsys: pytest.CaptureFixture[str]
) -> None:
    s = unique.settings
    args = argparse.Namespace(action="lifecycle", dry_run=False, today=None)
    assert await retention._run(args, s) == 0
    rules = json.loads(capsys.readouterr().out)["Rules"]
    days = {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules}
    es = s.elasticsearch
    assert days == {"evidence/": es.events_retention_days,
                    "thumbs/": es.predictions_retention_days}  # fmt: skip
