"""`harclip labels show|set --bundle B`: read or change a bundle's label set, without torch.

`set` encodes the new prompts with the bundle's ONNX text encoder, writes the new head into the
bundle with a new version (newer than any before it, unique across processes), and prints it.
With `--publish` it also publishes the head on `harclip.control`, so running workers and APIs
switch to it between batches; that needs Kafka (a clear error when it does not answer, after the
bundle was written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from harclip.config import KafkaSettings, Settings
from harclip.errors import ConfigError

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle
    from harclip.model.head import Head


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the label set, head version and kind")
    show.add_argument("--json", action="store_true", help="print labels.json-style JSON")
    set_ = sub.add_parser("set", help="replace the label set and bump the head version")
    source = set_.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file",
        type=Path,
        help='JSON or YAML: {name: [prompt, ...]}, {"labels": {...}} or a list of names',
    )
    source.add_argument(
        "--names", help="comma-separated names; each gets the default prompt templates"
    )
    set_.add_argument(
        "--publish",
        action="store_true",
        help="also publish the head on harclip.control (running workers and APIs switch to it)",
    )
    for p in (show, set_):
        p.add_argument("--bundle", type=Path, help="model bundle (default: HARCLIP_MODEL__BUNDLE)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.model.bundle import Bundle

    path = args.bundle or settings.model.bundle
    if path is None:
        raise ConfigError("no bundle: pass --bundle B or set HARCLIP_MODEL__BUNDLE")
    bundle = Bundle.load(path)
    if args.action == "show":
        return _show(bundle, as_json=args.json)
    return _set(bundle, args, settings)


def _show(bundle: Bundle, *, as_json: bool) -> int:
    head = bundle.load_head()
    if as_json:
        doc = {"version": head.version, "kind": head.kind, "labels": list(head.labels),
               "prompts": head.prompts}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return 0
    table = Table(
        title=f"{bundle.path}: head v{head.version} ({head.kind}), {len(head.labels)} labels"
    )
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("prompts", overflow="fold")
    for i, label in enumerate(head.labels):
        prompts = head.prompts.get(label, [])
        first = prompts[0] if prompts else ""
        more = f" (+{len(prompts) - 1} more)" if len(prompts) > 1 else ""
        table.add_row(str(i), label, first + more)
    Console().print(table)
    return 0


def _set(bundle: Bundle, args: argparse.Namespace, settings: Settings) -> int:
    from harclip.model.relabel import label_set_from_names, load_label_set, relabel

    if args.file is not None:
        label_set = load_label_set(args.file)
    else:
        label_set = label_set_from_names(args.names.split(","))
    head = relabel(bundle, label_set)
    print(f"head version {head.version}: {len(head.labels)} labels ({', '.join(head.labels)})")
    if args.publish:
        asyncio.run(_publish(settings.kafka, head))
        print(f"published on {settings.kafka.topics.control} ({settings.kafka.bootstrap})")
    return 0


async def _publish(s: KafkaSettings, head: Head) -> None:
    from harclip.control import HEAD_KEY, publish
    from harclip.io.topics import start_producer

    producer = await start_producer(s)
    try:
        await publish(producer, s, HEAD_KEY, head.to_control())
    finally:
        await producer.stop()
