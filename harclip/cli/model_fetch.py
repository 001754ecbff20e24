"""`harclip model-fetch [SOURCE] [--dest DIR] [--expect-version V]`: fetch a bundle from the
object store (`s3://`), MLflow or a folder, verify it and move it into place
(`harclip.model.fetch`; the k8s init container)."""

from __future__ import annotations

import argparse

from harclip.config import Settings
from harclip.model import fetch


def configure(parser: argparse.ArgumentParser) -> None:
    fetch.configure(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return fetch.run(args, settings)
