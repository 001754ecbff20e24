"""`prepare`: a data source → `split.json` (or the manifest the config names, as it is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from training import progress
from training.config import Config
from training.data.sources import list_source
from training.data.split import Manifest, build_manifest, load_manifest, summary

SPLIT_FILE = "split.json"


def prepared_manifest(cfg: Config, *, show: bool = True) -> tuple[Manifest, Path]:
    """`cfg.data.manifest` when set, else `cfg.data.source` listed, verified and split into
    `cfg.output/split.json` (reused as it is when it exists for the same source and seed)."""
    if cfg.data.manifest is not None:
        return load_manifest(cfg.data.manifest), cfg.data.manifest
    path = cfg.output / SPLIT_FILE
    if path.is_file():
        existing = load_manifest(path)
        if _same_request(existing, cfg):
            progress.say(escape(f"split: {summary(existing)} (reusing {path})"), enabled=show)
            return existing, path
    manifest = write_split(cfg, path, show=show)
    return manifest, path


def write_split(cfg: Config, path: Path, *, show: bool = True) -> Manifest:
    """List, verify and split `cfg.data.source`, write the manifest to `path`."""
    d = cfg.data
    with progress.step(f"list {d.source}", enabled=show):
        listing = list_source(d, cfg.output / "data", d.classes)
    with progress.bar("verify images", len(listing.records), enabled=show) as advance:
        manifest = build_manifest(
            listing,
            val_fraction=d.val_fraction,
            test_fraction=d.test_fraction,
            seed=d.seed,
            max_per_class=d.max_per_class,
            progress=advance,
            request=_request(cfg),
        )
    manifest.save(path)
    progress.say(escape(f"split: {summary(manifest)} -> {path}"), enabled=show)
    for s in manifest.skipped[:5]:
        progress.say(
            f"  [yellow]skipped[/] {escape(s['file'])}: {escape(s['reason'])}", enabled=show
        )
    if len(manifest.skipped) > 5:
        progress.say(f"  ... and {len(manifest.skipped) - 5} more", enabled=show)
    return manifest


def _same_request(m: Manifest, cfg: Config) -> bool:
    return m.request == _request(cfg)


def _request(cfg: Config) -> dict[str, Any]:
    """What decides the split: the data config less the loader's settings."""
    return cfg.data.model_dump(mode="json", exclude={"manifest", "workers"})
