"""`python -m consumers --bundle B [--engine E]`: run one inference worker until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from harclip.config import EngineName, Settings, load_settings
from harclip.errors import ConfigError, HarclipError
from harclip.log import setup_logging
from harclip.model.bundle import Bundle

log = logging.getLogger("consumers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m consumers", description=__doc__)
    p.add_argument("--bundle", type=Path, help="model bundle folder (HARCLIP_MODEL__BUNDLE)")
    p.add_argument("--engine", choices=get_args(EngineName), help="default: HARCLIP_MODEL__ENGINE")
    p.add_argument("--partitions", type=int, help="partitions of topics this worker creates")
    p.add_argument("--max-batch", type=int, help="frames per batch (HARCLIP_BATCHING__MAX_BATCH)")
    p.add_argument("--max-wait-ms", type=float, help="batch collection window, ms")
    p.add_argument("--max-age-ms", type=float, help="drop live frames older than this, ms")
    p.add_argument("--metrics-port", type=int, help="/health /ready /metrics port; 0: any")
    p.add_argument(
        "--no-pipeline",
        action="store_true",
        help="one batch at a time, fetch only after the last commit (baseline)",
    )
    return p


def apply_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the command-line overrides in (each option wins over its env variable)."""
    batching: dict[str, Any] = {
        k: v for k, v in (("max_batch", args.max_batch), ("max_wait_ms", args.max_wait_ms),
                          ("max_age_ms", args.max_age_ms)) if v is not None
    }  # fmt: skip
    model: dict[str, Any] = {}
    if args.bundle is not None:
        model["bundle"] = args.bundle
    if args.engine is not None:
        model["engine"] = args.engine
    try:
        return settings.model_copy(update={
            "batching": settings.batching.model_validate(
                settings.batching.model_dump() | batching),
            "model": settings.model.model_validate(settings.model.model_dump() | model),
        })  # fmt: skip
    except ValueError as e:
        raise ConfigError(f"invalid option: {e}") from None


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event,
    partitions: int | None = None,
    pipelined: bool = True,
    metrics_port: int | None = None,
    started: Any = None,
) -> None:
    """Run one worker with `settings` until `stop` is set (for tests and `main`).
    `started(worker)`, if given, is called once the worker is consuming."""
    from consumers.worker import Worker

    if settings.model.bundle is None:
        raise ConfigError("no model bundle: pass --bundle DIR or set HARCLIP_MODEL__BUNDLE")
    bundle = await asyncio.to_thread(Bundle.load, settings.model.bundle)
    worker = Worker(settings, bundle, partitions=partitions, pipelined=pipelined,
                    metrics_port=metrics_port)  # fmt: skip
    if started is not None:
        asyncio.get_running_loop().create_task(_notify(worker, started))
    await worker.run(stop)


async def _notify(worker: Any, started: Any) -> None:
    await worker.started.wait()
    started(worker)


async def _main(settings: Settings, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop=stop, partitions=args.partitions, pipelined=not args.no_pipeline,
              metrics_port=args.metrics_port)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = apply_args(load_settings(), args)
        setup_logging("harclip-worker", settings.log_format, settings.log_level)
        asyncio.run(_main(settings, args))
    except HarclipError as e:
        print(f"consumers: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
