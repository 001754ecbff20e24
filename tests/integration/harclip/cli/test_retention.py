"""`harclip retention apply` on the real S3 server: evidence objects of the events' expired days
go, those of kept days and keys that are not evidence stay."""

from __future__ import annotations

import argparse
import datetime as dt

from harclip.cli import retention
from harclip.io.keys import evidence_keys
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
