"""`harclip retention show|apply [--dry-run]`: the daily Elasticsearch indices of predictions,
events and logs, and deleting those older than their family's retention (whole days; this
Elasticsearch build has no ILM). `apply --dry-run` lists what `apply` would delete."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt

from rich.console import Console
from rich.table import Table

from harclip.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "apply"))
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
            return 0
        await indices.delete_indices(es, sorted(old))
        print(f"deleted {len(old)} indices")
        return 0
    finally:
        await es.close()
