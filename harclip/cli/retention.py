"""`harclip retention show|apply [--dry-run]|lifecycle`: the daily Elasticsearch indices of
predictions, events and logs, and deleting those older than their family's retention (whole
days; this Elasticsearch build has no ILM), with the object-store objects of the expired days
(when the store is enabled): the evidence of the events' days (`evidence/<stream>/<day>/...`)
and the keyframe thumbnails of the predictions' days (`thumbs/<stream>/<day>/...`).
`apply --dry-run` lists what `apply` would delete. `lifecycle` prints the S3 lifecycle rule that
does the same in a store that runs them (a backstop: it counts from each object's write time)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harclip.config import Settings

if TYPE_CHECKING:
    from harclip.io.indices import Family
    from harclip.io.objects import ObjectStore

EVIDENCE_PREFIX = "evidence/"
THUMBS_PREFIX = "thumbs/"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "apply", "lifecycle"))
    parser.add_argument("--dry-run", action="store_true", help="apply: list, delete nothing")
    parser.add_argument(
        "--today", type=dt.date.fromisoformat, help="the day to count from (UTC; default: today)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.io import indices
    from harclip.io.es import make_es

    s = settings.elasticsearch
    if args.action == "lifecycle":
        print(json.dumps(lifecycle_rules(settings), indent=2))
        return 0
    today = args.today or dt.datetime.now(dt.UTC).date()
    es = make_es(s)
    try:
        found = await indices.dated_indices(es, s)
        old = {i.name for i in indices.expired(found, s, today)}
        table = Table(title=f"daily indices at {s.url} (today: {today})")
        for col in ("index", "family", "day", "docs", "MB", "keep days", ""):
            table.add_column(col)
        for i in found:
            mark = "[red]expired[/red]" if i.name in old else ""
            table.add_row(i.name, i.family, str(i.day), str(i.docs), f"{i.bytes / 1e6:.1f}",
                          str(indices.retention_days(s, i.family)), mark)  # fmt: skip
        Console().print(table)
        if args.action == "show":
            return 0
        if args.dry_run:
            print(f"dry run: would delete {len(old)} indices")
        else:
            await indices.delete_indices(es, sorted(old))
            print(f"deleted {len(old)} indices")
    finally:
        await es.close()
    if settings.objects.enabled:
        for what, prefix, family in _OBJECTS:
            keep = indices.retention_days(s, family)
            gone = await _objects(settings, prefix, today, keep, dry_run=args.dry_run)
            print(f"{'dry run: would delete' if args.dry_run else 'deleted'} {gone} {what} "
                  f"older than {keep} days")  # fmt: skip
    return 0


# the objects that go with each family's days: (what, key prefix, family)
_OBJECTS: tuple[tuple[str, str, Family], ...] = (
    ("evidence objects", EVIDENCE_PREFIX, "events"),
    ("keyframe thumbnails", THUMBS_PREFIX, "predictions"),
)


def lifecycle_rules(settings: Settings) -> dict[str, Any]:
    """The bucket's S3 lifecycle configuration (`PutBucketLifecycleConfiguration`): each prefix
    expires after its family's retention days."""
    from harclip.io import indices

    s = settings.elasticsearch
    return {"Rules": [
        {"ID": f"harclip-{prefix.rstrip('/')}", "Filter": {"Prefix": prefix}, "Status": "Enabled",
         "Expiration": {"Days": indices.retention_days(s, family)}}
        for _, prefix, family in _OBJECTS
    ]}  # fmt: skip


async def _objects(
    settings: Settings, prefix: str, today: dt.date, keep_days: int, *, dry_run: bool
) -> int:
    from harclip.io.objects import ObjectStore

    store = ObjectStore(settings.objects)
    await store.start()
    try:
        keys = await expired_objects(store, prefix, today, keep_days)
        if not dry_run:
            await store.delete(keys)
        return len(keys)
    finally:
        await store.close()


async def expired_evidence(store: ObjectStore, today: dt.date, keep_days: int) -> list[str]:
    """Keys of the evidence objects whose day (`evidence/<stream>/<yyyy-mm-dd>/...`) is older
    than `keep_days` (the events' retention: kept are the last N days, today included), so
    evidence goes with the events indices of its days. Other keys are left alone."""
    return await expired_objects(store, EVIDENCE_PREFIX, today, keep_days)


async def expired_objects(
    store: ObjectStore, prefix: str, today: dt.date, keep_days: int
) -> list[str]:
    """Keys under `prefix` (`<prefix><stream>/<yyyy-mm-dd>/<name>`) whose day is older than
    `keep_days` (kept are the last N days, today included). Other keys are left alone."""
    out = []
    for o in await store.list(prefix):
        parts = o.key.split("/")
        if len(parts) != 4:
            continue
        try:
            day = dt.date.fromisoformat(parts[2])
        except ValueError:
            continue  # not ours
        if (today - day).days >= keep_days:
            out.append(o.key)
    return out
