"""`harclip topics create|describe`: the project's Kafka topics with their configured partitions
(producers, workers and the API create them by themselves; this is the same call by hand)."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.table import Table

from harclip.argtypes import POSITIVE
from harclip.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("create", "describe"))
    parser.add_argument(
        "--partitions",
        type=POSITIVE,
        help="create: partitions per topic (HARCLIP_KAFKA__PARTITIONS)",
    )
    parser.add_argument(
        "--add-partitions",
        action="store_true",
        help="create: grow topics that have fewer partitions than configured (keys move)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.io.topics import describe_topics, ensure_topics

    s = settings.kafka
    if args.action == "create":
        report = asyncio.run(
            ensure_topics(s, partitions=args.partitions, add_partitions=args.add_partitions)
        )
        print(f"created: {', '.join(report.created) or 'none'}")
        if report.grown:
            print(f"added partitions: {', '.join(report.grown)}")
        for line in report.warnings():
            print(f"warning: {line}")
    table = Table(title=f"Kafka at {s.bootstrap}")
    for col in ("topic", "partitions", "configured"):
        table.add_column(col)
    short = False
    for t in asyncio.run(describe_topics(s)):
        mark = "" if t.partitions >= t.wanted else " [yellow](short)[/yellow]"
        short |= t.partitions < t.wanted
        table.add_row(t.name, (str(t.partitions) if t.partitions else "missing") + mark,
                      str(t.wanted))  # fmt: skip
    Console().print(table)
    return 1 if short and args.action == "describe" else 0
