"""`harclip watch add NAME ... | list | rm NAME | eval`: the watches every worker scores, through
the API (it builds a watch's vectors where the text encoder and the history are, and publishes
the set on `harclip.control`). The API is `--api` (default `HARCLIP_UI__API_URL`) and writes need
an admin key (`--api-key`, default `HARCLIP_UI__API_KEY`)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from harclip.argtypes import FRACTION, POSITIVE, RATE, SECONDS
from harclip.config import Settings
from harclip.errors import HarclipError

_EVALUATE = "harclip.watches.evaluate"  # written by the events side; absent: no `eval`


def _evaluate() -> ModuleType | None:
    try:
        return importlib.import_module(_EVALUATE)
    except ModuleNotFoundError as e:
        if e.name == _EVALUATE:
            return None
        raise


def _add_parser(sub: Any) -> None:
    add = sub.add_parser("add", help="add a watch (or replace it with --replace)")
    add.add_argument("name", help="lower-case letters, digits, '.', '_', '-' (at most 64)")
    add.add_argument("--prompt", action="append", default=[], help="text to look for (repeat)")
    add.add_argument("--example", action="append", default=[], metavar="FRAME_ID",
                     help="a frame of the history that shows it (repeat)")  # fmt: skip
    add.add_argument("--example-image", action="append", default=[], type=Path, metavar="PATH",
                     help="an image file: uploaded, kept in the history (repeat)")  # fmt: skip
    add.add_argument("--negative", action="append", default=[],
                     help="competing text, e.g. 'a person standing' (repeat)")  # fmt: skip
    add.add_argument("--streams", action="append", default=[], metavar="GLOB",
                     help="streams it applies to (repeat; default all)")  # fmt: skip
    add.add_argument("--window", type=POSITIVE, help="frames mean-pooled per stream (default 1)")
    add.add_argument("--false-alarms-per-hour", type=RATE, help="target rate per camera")
    add.add_argument("--threshold", type=FRACTION, help="absolute threshold while calibrating")
    add.add_argument("--pin", type=FRACTION, metavar="T", help="fixed threshold: no calibration")
    add.add_argument("--min-duration", type=SECONDS, metavar="S", help="seconds above to fire")
    add.add_argument("--cooldown", type=SECONDS, metavar="S", help="seconds between alerts")
    add.add_argument("--severity", choices=("info", "warning", "critical"))
    add.add_argument("--webhook", action="append", default=[], metavar="URL")
    add.add_argument("--replace", action="store_true", help="replace a watch of this name")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="the API's URL (default HARCLIP_UI__API_URL)")
    parser.add_argument("--api-key", help="an admin key to write (default HARCLIP_UI__API_KEY)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_parser(sub)
    sub.add_parser("list", help="the watches in force")
    rm = sub.add_parser("rm", help="remove a watch")
    rm.add_argument("name")
    evaluate = _evaluate()
    if evaluate is not None:
        p = sub.add_parser("eval", help="precision, recall and false alarms per hour of watches")
        evaluate.configure(p)


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The WatchSpec body of `watch add` (only what was given; the API judges it)."""
    doc: dict[str, Any] = {"name": args.name}
    lists = {"prompts": args.prompt, "examples": args.example, "negatives": args.negative,
             "streams": args.streams, "webhooks": args.webhook}  # fmt: skip
    doc |= {k: v for k, v in lists.items() if v}
    scalars = {"window": args.window, "false_alarms_per_hour": args.false_alarms_per_hour,
               "threshold": args.threshold, "pinned_threshold": args.pin,
               "min_duration_seconds": args.min_duration, "cooldown_seconds": args.cooldown,
               "severity": args.severity}  # fmt: skip
    doc |= {k: v for k, v in scalars.items() if v is not None}
    return doc


def describe(spec: Any, version: int) -> str:
    """One line per watch: name, version, streams, what it looks for."""
    what = [*(repr(p) for p in spec.prompts), *(f"frame:{e}" for e in spec.examples)]
    pin = f", pinned {spec.pinned_threshold:g}" if spec.pinned_threshold is not None else ""
    return (f"{spec.name} v{version} [{', '.join(spec.streams)}] window {spec.window}, "
            f"{spec.false_alarms_per_hour:g} false alarms/h{pin}, {spec.severity}: "
            f"{' | '.join(what)}")  # fmt: skip


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise HarclipError(f"--example-image {path}: {e.strerror or e}") from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "eval":
        evaluate = _evaluate()
        assert evaluate is not None
        code: int = evaluate.run(args, settings)
        return code
    from harclip.client import Client

    ui = settings.ui
    key = args.api_key or (ui.api_key.get_secret_value() if ui.api_key else None)
    with Client(args.api or ui.api_url, key, timeout_s=max(ui.timeout_s, 30.0)) as client:
        if args.action == "add":
            spec = spec_of(args)
            for path in args.example_image:
                up = client.upload_watch_example(_read(path), path.name)
                print(f"uploaded {path} as frame {up.frame_id}")
                spec.setdefault("examples", []).append(up.frame_id)
            info = client.put_watch(args.name, spec, create=not args.replace)
            print(f"published {describe(info.spec, info.version)}")
        elif args.action == "rm":
            doc = client.delete_watch(args.name)
            print(f"removed {args.name}: {len(doc.watches)} watches in force (v{doc.version})")
        else:
            doc = client.list_watches()
            print(f"{len(doc.watches)} watches in force (v{doc.version})")
            for w in doc.watches:
                print(f"  {describe(w.spec, w.version)}")
    return 0
