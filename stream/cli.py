"""`python -m stream`: run one events-app worker (Faust) until SIGINT/SIGTERM.
(`faust -A stream.app worker` runs the same app with Faust's own command line.)"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harclip.argtypes import PORT
from harclip.config import Settings, load_settings
from harclip.errors import ConfigError, HarclipError
from harclip.log import setup_logging
from harclip.rules import Rules, load_rules_file

log = logging.getLogger("stream")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stream", description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=Path, help="alert rules YAML (HARCLIP_STREAM__RULES)")
    p.add_argument("--port", type=PORT, help="/health /ready /metrics port; 0: any free")
    p.add_argument("--datadir", type=Path, help="Faust's local data, one per worker")
    p.add_argument("--store", choices=("rocksdb", "memory"), help="table store")
    p.add_argument("--app-id", help="Faust app id = consumer group (HARCLIP_STREAM__APP_ID)")
    return p


def apply_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the command-line overrides in (each wins over its env variable)."""
    over: dict[str, Any] = {
        k: v for k, v in (("rules", args.rules), ("port", args.port), ("datadir", args.datadir),
                          ("store", args.store), ("app_id", args.app_id)) if v is not None
    }  # fmt: skip
    try:
        stream = settings.stream.model_validate(settings.stream.model_dump() | over)
    except ValueError as e:
        raise ConfigError(f"invalid option: {e}") from None
    return settings.model_copy(update={"stream": stream})


async def _partitions(settings: Settings) -> int:
    """The partition count of harclip.predictions if it exists, else `kafka.partitions`."""
    from stream.runtime import topic_partitions

    found = await topic_partitions(settings, [settings.kafka.topics.predictions])
    return found.get(settings.kafka.topics.predictions, settings.kafka.partitions)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = apply_args(load_settings(), args)
        setup_logging(
            "harclip-stream", settings.log_format, settings.log_level, settings.log_shipping
        )
        quiet = max(logging.WARNING, logging.getLogger().level)
        for noisy in ("faust", "mode"):  # Faust's INFO is a page per rebalance
            logging.getLogger(noisy).setLevel(quiet)
        rules = Rules() if settings.stream.rules is None else load_rules_file(settings.stream.rules)
        from faust import Worker  # after the checks that need no Faust: they answer fast

        from stream.application import create_app

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        partitions = loop.run_until_complete(_partitions(settings))
        app = create_app(settings, rules=rules, partitions=partitions)
        worker = Worker(app, loop=loop, loglevel=settings.log_level, quiet=True,
                        redirect_stdouts=False, override_logging=False)  # fmt: skip
    except HarclipError as e:
        print(f"stream: error: {e}", file=sys.stderr)
        return 2
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        crashed = app.runtime.crash_reason()
        if crashed:
            print(f"stream: error: {crashed}", file=sys.stderr)
            return 2
        return code
    except KeyboardInterrupt:
        return 130
    return 0
