"""The `harclip` command: one entry point, one subcommand module per job.

Each subcommand module exposes `configure(parser)` and `run(args, settings) -> int` and imports
nothing heavy (torch, transformers) at module level, so `harclip --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from harclip.config import load_settings
from harclip.errors import HarclipError

# command -> (module, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "services": ("harclip.cli.services", "local Kafka, Redis and Elasticsearch (up|down|status)"),
    "init-model": ("harclip.cli.init_model", "write a random CLIP (tiny or ViT-B/32)"),
    "export": ("harclip.cli.export", "export a CLIP into a model bundle (ONNX, INT8, ...)"),
    "predict": ("harclip.cli.predict", "predict the action in images or folders of images"),
    "labels": ("harclip.cli.labels", "show or change a bundle's label set (no torch needed)"),
    "topics": ("harclip.cli.topics", "create or describe the Kafka topics (partitions, configs)"),
    "retention": ("harclip.cli.retention", "show or delete expired daily Elasticsearch indices"),
    "rules": ("harclip.cli.rules", "show or set the events app's alert rules (harclip.control)"),
    "model-fetch": ("harclip.cli.model_fetch", "fetch a bundle (s3://, MLflow, folder) and verify"),
    "feedback": ("harclip.cli.feedback", "import labelled photos as feedback, or list feedback"),
    "adapt": ("harclip.cli.adapt", "build, gate, promote or roll back the feedback cache adapter"),
    "watch": ("harclip.cli.watch", "add, list, remove or evaluate watches (through the API)"),
}


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):  # not written yet
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harclip", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in _COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        mod.configure(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        code: int = args._module.run(args, settings)
        return code
    except HarclipError as e:
        print(f"harclip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harclip {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
