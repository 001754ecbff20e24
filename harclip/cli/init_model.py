"""`harclip init-model OUTDIR [--arch tiny|vit-b-32]`: write a randomly initialised CLIP."""

from __future__ import annotations

import argparse
from pathlib import Path

from harclip.argtypes import POSITIVE, whole
from harclip.config import Settings

_ARCHS = ("tiny", "vit-b-32")  # harclip.clip.init.ARCHS, kept here so --help imports no torch


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", type=Path, help="folder to write (created)")
    parser.add_argument(
        "--arch",
        choices=_ARCHS,
        default="tiny",
        help="tiny: a few layers of width 32-64 (tests, demo); vit-b-32: the real ViT-B/32 shapes",
    )
    parser.add_argument("--seed", type=whole(0), default=0, help="random seed of the weights")
    parser.add_argument(
        "--embed-dim", type=POSITIVE, help="embedding size (default: the architecture's: 32, 512)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.clip.init import init_model

    out = init_model(args.outdir, args.arch, seed=args.seed, embed_dim=args.embed_dim)
    print(f"wrote a random {args.arch} CLIP to {out} (load it with --model {out})")
    return 0
