"""`python -m consumers --bundle B [--engine E]`: run one inference worker until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from consumers.worker import Worker
from harclip.argtypes import PORT, POSITIVE, SECONDS
from harclip.config import EngineChoice, Settings, load_settings
from harclip.errors import ConfigError, HarclipError
from harclip.log import setup_logging
from harclip.model.bundle import Bundle

log = logging.getLogger("consumers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m consumers", description=__doc__)
    p.add_argument("--bundle", type=Path, help="model bundle folder (HARCLIP_MODEL__BUNDLE)")
    p.add_argument(
        "--engine",
        choices=get_args(EngineChoice),
        help="default: HARCLIP_MODEL__ENGINE, else auto (the fastest engine the bundle validated)",
    )
    p.add_argument(
        "--partitions",
        type=POSITIVE,
        help="partitions of topics it creates (HARCLIP_KAFKA__PARTITIONS)",
    )
    p.add_argument(
        "--max-batch", type=POSITIVE, help="frames per batch (HARCLIP_BATCHING__MAX_BATCH)"
    )
    p.add_argument("--max-wait-ms", type=SECONDS, help="batch collection window, ms")
    p.add_argument("--max-age-ms", type=SECONDS, help="drop live frames older than this, ms")
    p.add_argument("--metrics-port", type=PORT, help="/health /ready /metrics port; 0: any")
    p.add_argument(
        "--no-pipeline",
        action="store_true",
        help="one batch at a time, fetch only after the last commit (baseline)",
    )
    return p


def apply_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the command-line overrides in (each option wins over its env variable)."""
    sections: dict[str, dict[str, Any]] = {
        "model": {"bundle": args.bundle, "engine": args.engine},
        "kafka": {"partitions": args.partitions},
        "batching": {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "max_age_ms": args.max_age_ms,
            "pipelined": False if args.no_pipeline else None,
        },
        "metrics": {"port": args.metrics_port},
    }
    update: dict[str, Any] = {}
    try:
        for name, values in sections.items():
            given = {k: v for k, v in values.items() if v is not None}
            if given:
                section = getattr(settings, name)
                update[name] = section.model_validate(section.model_dump() | given)
    except ValueError as e:
        raise ConfigError(f"invalid option: {e}") from None
    return settings.model_copy(update=update)


async def run(
    settings: Settings, *, stop: asyncio.Event, started: Callable[[Worker], None] | None = None
) -> None:
    """Run one worker with `settings` until `stop` is set (for tests and `main`).
    `started(worker)`, if given, is called once the worker is consuming."""
    if settings.model.bundle is None:
        raise ConfigError("no model bundle: pass --bundle DIR or set HARCLIP_MODEL__BUNDLE")
    bundle = await asyncio.to_thread(Bundle.load, settings.model.bundle)
    worker = Worker(settings, bundle)
    notify = None
    if started is not None:
        notify = asyncio.create_task(_notify(worker, started), name="notify-started")
    try:
        await worker.run(stop)
    finally:
        if notify is not None:
            notify.cancel()
            await asyncio.gather(notify, return_exceptions=True)


async def _notify(worker: Worker, started: Callable[[Worker], None]) -> None:
    await worker.started.wait()
    started(worker)


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = apply_args(load_settings(), args)
        setup_logging(
            "harclip-worker", settings.log_format, settings.log_level, settings.log_shipping
        )
        asyncio.run(_main(settings))
    except HarclipError as e:
        print(f"consumers: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
