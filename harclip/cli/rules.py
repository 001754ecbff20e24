"""`harclip rules set FILE | show`: the alert rules every events app follows (`harclip.control`,
key `rules`)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from harclip.config import Settings
from harclip.messages import now_ms
from harclip.rules import describe, load_rules_file, publish_rules, read_published_rules


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = sub.add_parser("set", help="validate a rules YAML file and publish it")
    put.add_argument("file", type=Path)
    sub.add_parser("show", help="the rules published on harclip.control")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "set":
        rules = load_rules_file(args.file)  # RulesError names the rule and field
        asyncio.run(publish_rules(settings.kafka, rules, updated_at=now_ms()))
        print(f"published {len(rules.rules)} rules to {settings.kafka.topics.control}")
        for line in describe(rules.rules):
            print(f"  {line}")
        return 0
    found = asyncio.run(read_published_rules(settings.kafka))
    if found is None:
        print(f"no rules on {settings.kafka.topics.control} (the app uses HARCLIP_STREAM__RULES)")
        return 0
    rules, updated_at = found
    print(f"{len(rules.rules)} rules on {settings.kafka.topics.control} (updated_at {updated_at})")
    for line in describe(rules.rules):
        print(f"  {line}")
    return 0
