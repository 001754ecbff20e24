"""`harclip services up|down|status`: run the local Kafka, Elasticsearch and Redis."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from harclip.config import Settings
from harclip.services import manager
from harclip.services.base import State, Status


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument(
        "names",
        nargs="*",
        metavar="SERVICE",
        help=f"only these ({', '.join(manager.NAMES)}); default: all",
    )
    parser.add_argument(
        "--started-file",
        type=Path,
        help="up: write the names of the services this call started (one a line) to this file, "
        "so a script can later stop only those",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    services = manager.build(settings, args.names)
    t0 = time.monotonic()
    if args.action == "up":
        try:
            statuses = manager.up(services)
        except manager.ServicesFailed as e:
            _record_started(args.started_file, e.statuses)  # so the caller can stop those
            raise
        _record_started(args.started_file, statuses)
        _print(statuses)
        print(f"ready in {time.monotonic() - t0:.1f} s")
        return 0
    if args.action == "down":
        _print(manager.down(services))
        return 0
    statuses = manager.status(services)
    _print(statuses)
    # 0: every service asked about runs and answers (scripts use this)
    return 0 if all(s.state is State.RUNNING for s in statuses) else 1


def _record_started(path: Path | None, statuses: Sequence[Status]) -> None:
    if path is not None:
        path.write_text("".join(s.name + "\n" for s in statuses if s.state is State.STARTED))


def _print(statuses: Sequence[Status]) -> None:
    for s in statuses:
        cols = [
            f"{s.name:<14}",
            f"{s.state.value:<10}",
            f"{s.address:<26}",
            f"{s.version or '-':<8}",
            f"pid {s.pid}" if s.pid else "pid -",
            f"log {_short(s.log)}",
        ]
        if s.seconds is not None:
            cols.append(f"({s.seconds:.1f} s)")
        print("  ".join(cols))


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
